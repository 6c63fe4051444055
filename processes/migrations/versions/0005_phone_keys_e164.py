"""Phones normalised by phonenumbers: the phone keys and the stored phones written before
it, in the new normal form

The old normaliser kept the digits of what was typed (8 -> 7 for Russian numbers, a
missing 7 added to a ten-digit number starting with 9). phonenumbers gives the E.164
number without its "+", which for every Russian number typed with a country code or a
trunk 8 is what was stored already; what changes are the numbers the old one mangled: an
extension appended to the number's digits, a ten-digit Russian city number without its
country code, a number dialled with the international prefix 8 10. Every phone key and
every stored phone is kept: one that no reading makes a valid number stays as it was, and
two keys of one customer that become the same number are one key (the unique constraint
on customer, kind and value).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 10:00:00.000000
"""

from __future__ import annotations

import phonenumbers
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

BATCH = 1000

customer_keys = sa.table('customer_keys', sa.column('id', sa.Integer), sa.column('customer_id', sa.Integer),
                         sa.column('kind', sa.String), sa.column('value', sa.String))


def renormalised(old: str) -> str:
    """The new normal form of a phone the old normaliser stored (its digits), or ``old``
    when no reading of them is a valid number. The readings, most specific first: a
    Russian international call (8 10 ...), a Russian ten-digit number without its 7, the
    digits as an international number (what a number typed with its country code became),
    a Russian number with its extension's digits appended, the digits as typed in Russia."""
    readings = []
    if old.startswith('810') and len(old) > 11:
        readings.append(old)
    if len(old) == 10:
        readings.append(old)
    readings.append('+' + old)
    if len(old) > 11 and old[0] in '78':
        readings.append('+7' + old[1:11])
    readings.append(old)
    for reading in readings:
        try:
            number = phonenumbers.parse(reading, 'RU')
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164).removeprefix('+')
    return old


def upgrade() -> None:
    connection = op.get_bind()
    _rewrite_keys(connection)
    for table_name in ('customers', 'contact_persons'):
        _rewrite_phone_lists(connection, table_name)


def _rewrite_keys(connection) -> None:
    """A key whose value changes is replaced by a new row (nothing refers to a key's id):
    deleting all of them before inserting keeps the unique constraint satisfied at every
    statement, whatever values they swap."""
    rows = connection.execute(sa.select(customer_keys.c.id, customer_keys.c.customer_id, customer_keys.c.value)
                              .where(customer_keys.c.kind == 'phone').order_by(customer_keys.c.id)).all()
    changed = []
    for key_id, customer_id, value in rows:
        new = renormalised(value)
        if new != value:
            changed.append((key_id, customer_id, new))
    changed_ids = {key_id for key_id, _, _ in changed}
    kept = {(customer_id, value) for key_id, customer_id, value in rows if key_id not in changed_ids}
    inserts = []
    for _, customer_id, value in changed:
        if (customer_id, value) not in kept:
            kept.add((customer_id, value))
            inserts.append({'customer_id': customer_id, 'kind': 'phone', 'value': value})
    ordered = sorted(changed_ids)
    for start in range(0, len(ordered), BATCH):
        connection.execute(sa.delete(customer_keys).where(customer_keys.c.id.in_(ordered[start:start + BATCH])))
    for start in range(0, len(inserts), BATCH):
        connection.execute(sa.insert(customer_keys), inserts[start:start + BATCH])


def _rewrite_phone_lists(connection, table_name: str) -> None:
    table = sa.table(table_name, sa.column('id', sa.Integer), sa.column('phones', sa.JSON))
    changed = []
    for row_id, phones in connection.execute(sa.select(table.c.id, table.c.phones).order_by(table.c.id)):
        if not phones:
            continue
        new = list(dict.fromkeys(renormalised(str(phone)) for phone in phones))
        if new != phones:
            changed.append({'row_id': row_id, 'new_phones': new})
    update = sa.update(table).where(table.c.id == sa.bindparam('row_id')).values(phones=sa.bindparam('new_phones'))
    for start in range(0, len(changed), BATCH):
        connection.execute(update, changed[start:start + BATCH])


def downgrade() -> None:
    # The old forms were lossy (an extension's digits glued to the number): the new ones stay.
    pass

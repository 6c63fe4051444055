"""Phone numbers through phonenumbers: the normal form (E.164 without its "+", Russia the
default country), the refusal of junk, duplicates and search across ways of writing one
number, and the processes migration 0005 that brings the phones stored before into that form."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from engine import migrations as engine_migrations
from engine.db import create_db_engine
from processes import migrations as crm_migrations
from processes.customers import ContactDraft
from processes.errors import InvalidData
from processes.normalize import normal_phone
from support.crm import draft


@pytest.mark.parametrize("written, normal", [
    # Moscow city number, as people write it in Russia
    ("8 (495) 123-45-67", "74951234567"),
    ("+7 495 1234567", "74951234567"),
    ("7 495 123 45 67", "74951234567"),
    ("74951234567", "74951234567"),
    ("(495) 123-45-67", "74951234567"),
    # mobiles, with and without the country code or trunk prefix
    ("+7 (916) 765-43-21", "79167654321"),
    ("8-916-765-43-21", "79167654321"),
    ("9167654321", "79167654321"),
    # a regional number with a five-digit area code, a toll-free one
    ("8 (8332) 12-34-56", "78332123456"),
    ("8 800 555-35-35", "78005553535"),
    # extensions are not part of the number
    ("8 (495) 123-45-67 доб. 123", "74951234567"),
    ("+7 495 123 45 67 (доб. 5)", "74951234567"),
    ("+7 (495) 123-45-67 ext. 12", "74951234567"),
    ("tel:+7-495-111-22-33;ext=102", "74951112233"),
    # foreign numbers, with their code or dialled from Russia (8 10)
    ("+371 2000 0000", "37120000000"),
    ("+49 30 123456", "4930123456"),
    ("+1 650 253 0000", "16502530000"),
    ("+44 20 7946 0958", "442079460958"),
    ("8 10 371 2000 0000", "37120000000"),
])
def test_a_phone_becomes_its_e164_number_without_the_plus(written, normal):
    assert normal_phone(written) == normal


@pytest.mark.parametrize("junk, reason", [
    ("12", "too few digits for +7"),
    ("hello", "it has no digits of a number"),
    ("", "it has no digits of a number"),
    ("123-45-67", "a city number needs its area code"),
    ("+7 495 123-45-67-89", "a wrong number of digits for +7"),
    ("+7 000 000 00 00", "no such number range in +7"),
    ("+999 123 456 789", "no country has the code after the +"),
    ("37120000000", "a wrong number of digits for +7"),  # a foreign number needs its +
])
def test_junk_is_refused_with_a_message_naming_the_value(junk, reason):
    with pytest.raises(ValueError) as refused:
        normal_phone(junk)
    assert str(refused.value) == f"{junk!r} is not a phone number ({reason})"


def test_one_number_written_three_ways_is_one_duplicate_key_and_found_by_search(crm):
    customer = crm.register_customer(draft(phones=["8 (495) 123-45-67 доб. 12"], curator="ann",
                                           contacts=[ContactDraft("Пётр", phones=["+371 2000 0000"])]),
                                     by="ann").customer
    assert customer.phones == ["74951234567"] and customer.contacts[0].phones == ["37120000000"]
    [candidate] = crm.find_duplicates(draft(name="Другое имя", inn_prefix=None, phones=["+7 495 123 45 67"]))
    assert candidate.customer_id == customer.id and tuple(map(str, candidate.reasons)) == ("same phone +74951234567",)
    assert crm.find_duplicates(draft(name="Иное", inn_prefix=None, phones=["8 10 371 20 00 00 00"]))[0] \
        .customer_id == customer.id
    assert [c.id for c in crm.search_customers("+7 (495) 123-45-67")] == [customer.id]
    assert [c.id for c in crm.search_customers("+371 20000000")] == [customer.id]

    with pytest.raises(InvalidData) as refused:
        crm.register_customer(draft(name="Junk", inn_prefix=None, phones=["+7 495 123"]), by="ann")
    assert {field: str(error) for field, error in refused.value.errors.items()} == {
        "phones": "'+7 495 123' is not a phone number (too few digits for +7)"}
    assert refused.value.errors["phones"].code == "not_a_phone"
    assert refused.value.errors["phones"].text.render("ru") == \
        "'+7 495 123' — не номер телефона (слишком мало цифр для +7)"


# -- the migration -------------------------------------------------------------------------

customers = sa.table("customers", *(sa.column(name) for name in ("id", "kind", "partner_role", "name", "status")),
                     *(sa.column(name, sa.JSON) for name in ("addresses", "properties", "emails", "phones")),
                     sa.column("created_at", sa.DateTime(timezone=True)))
contacts = sa.table("contact_persons", sa.column("id"), sa.column("customer_id"), sa.column("name"),
                    sa.column("emails", sa.JSON), sa.column("phones", sa.JSON))
keys = sa.table("customer_keys", sa.column("id"), sa.column("customer_id"), sa.column("kind"), sa.column("value"))


def test_the_migration_brings_stored_phones_into_the_new_form_and_keeps_every_one(database_url):
    db = create_db_engine(database_url)
    engine_migrations.upgrade(db)
    crm_migrations.upgrade(db, "0004")
    # What the old normaliser stored: digits as typed, 8 -> 7, extensions glued on.
    old = {
        1: (["74951234567", "4951234567", "84951234567123"], [["79161234567", "81037120000000"]]),
        2: (["74957654321123", "37120000000", "123456"], []),
    }
    with db.begin() as connection:
        for customer_id, (phones, contact_phones) in old.items():
            connection.execute(sa.insert(customers).values(
                id=customer_id, kind="organisation", partner_role="customer", name=f"C{customer_id}",
                status="potential", addresses=[], properties={}, emails=[], phones=phones,
                created_at=datetime(2026, 11, 1, tzinfo=timezone.utc)))
            for index, listed in enumerate(contact_phones):
                connection.execute(sa.insert(contacts).values(customer_id=customer_id, name=f"P{index}",
                                                              emails=[], phones=listed))
            every = phones + [phone for listed in contact_phones for phone in listed]
            connection.execute(sa.insert(keys), [{"customer_id": customer_id, "kind": "phone", "value": v}
                                                 for v in every]
                               + [{"customer_id": customer_id, "kind": "name", "value": "4951234567"}])

    crm_migrations.upgrade(db)

    with db.connect() as connection:
        stored = dict(connection.execute(sa.select(customers.c.id, customers.c.phones)).all())
        contact_phones = connection.execute(sa.select(contacts.c.phones)).scalars().all()
        key_rows = sorted(connection.execute(sa.select(keys.c.customer_id, keys.c.kind, keys.c.value)).all())
    db.dispose()
    # Three ways of writing one Moscow number are one phone; the one no reading makes valid stays.
    assert stored == {1: ["74951234567"], 2: ["74957654321", "37120000000", "123456"]}
    assert contact_phones == [["79161234567", "37120000000"]]
    # Only phone keys change: a name that looks like a number stays.
    assert key_rows == [(1, "name", "4951234567"), (1, "phone", "37120000000"), (1, "phone", "74951234567"),
                        (1, "phone", "79161234567"),
                        (2, "name", "4951234567"), (2, "phone", "123456"), (2, "phone", "37120000000"),
                        (2, "phone", "74957654321")]
    for value in ("74951234567", "79161234567", "37120000000", "74957654321"):
        assert normal_phone("+" + value) == value  # what a search or a duplicate check now looks up

"""Customers (D1-D4) and claims (C1, C5), through the CRM facade ``processes.crm.Crm``:
the customer card, registering with the duplicate check, interactions, deals, claims,
and the public self-service claim form."""

from __future__ import annotations

from decimal import Decimal

from flask import Blueprint, Response, flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from flask_login import current_user
from flask_wtf.file import MultipleFileField
from wtforms import HiddenField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import Optional

from engine.errors import CrmflowError
from processes.crm import CLAIM_REASONS, ClaimDraft
from processes.crm.definitions import MAX_ATTACHMENT_BYTES
from processes.customers import DECISION_ROLES, IMPORTANCE, ContactDraft, CustomerDraft
from processes.errors import DuplicateCustomer
from processes.models import CustomerKind, CustomerStatus, DealKind, InteractionKind, InteractionStatus, PartnerRole
from processes.normalize import normal_email, normal_inn, normal_phone
from webui import limits
from webui.access import crm, engine, role_required
from webui.errors import show_refusal
from webui.fields import AmountField, Files, IsoDateField, LinesField, Normalised, WebForm, at_most, blank_to_none, \
    labelled, required

bp = Blueprint("customers", __name__)
STAFF = ("employee", "manager")
MAX_ATTACHMENTS = 5
KIND_LABELS = {CustomerKind.ORGANISATION: lazy_gettext("Organisation (b2b)"),
               CustomerKind.PERSON: lazy_gettext("Private person (b2c)")}
DECISION_ROLE_LABELS = {"decision_maker": lazy_gettext("decides"), "influencer": lazy_gettext("influences"),
                        "user": lazy_gettext("uses"), "gatekeeper": lazy_gettext("gatekeeper"),
                        "other": lazy_gettext("other")}


def init_app(app) -> None:
    """The self-service form's limit per client address, counted by every web process
    together (webui/limits.py); a bot's post caught by the honeypot is not counted."""
    limits.limit_endpoint(app, "customers.self_service", f"{app.config['CRMFLOW_CLAIMS_PER_HOUR']} per hour",
                          methods=["POST"], exempt_when=lambda: bool(SelfServiceClaimForm().website.data),
                          on_breach=_too_many_claims)


# -- the forms ----------------------------------------------------------------------------


class RegistrationForm(WebForm):
    """A new customer (D1); ``deliberate`` is the second click past likely duplicates (D2)."""

    name = StringField(lazy_gettext("Name"), [required(), at_most(300)])
    inn = StringField(lazy_gettext("INN"), [Normalised(normal_inn)])
    category = StringField(lazy_gettext("Category"), [at_most(100)])
    kind = SelectField(lazy_gettext("Kind"), choices=labelled(CustomerKind, KIND_LABELS),
                       default=CustomerKind.ORGANISATION)
    phones = LinesField(lazy_gettext("Phones (one per line)"), [Normalised(normal_phone)])
    emails = LinesField(lazy_gettext("E-mails (one per line)"), [Normalised(normal_email)])
    deliberate = HiddenField()


class CustomerForm(RegistrationForm):
    """A customer's own fields as they are edited (its contact persons are added on the card,
    its curator is changed by handing it over)."""

    partner_role = SelectField(lazy_gettext("Partner role"), choices=labelled(PartnerRole))
    status = SelectField(lazy_gettext("Status"), choices=labelled(CustomerStatus))
    relationship_stage = StringField(lazy_gettext("Relationship stage"), [at_most(100)])
    importance = SelectField(lazy_gettext("Importance"), choices=[SelectChoice("", "—"), *labelled(IMPORTANCE)],
                             default="")


class ContactForm(WebForm):
    """A contact person of a customer (D1)."""

    name = StringField(lazy_gettext("Name"), [required(), at_most(300)])
    position = StringField(lazy_gettext("Position"), [at_most(200)])
    decision_role = SelectField(lazy_gettext("Role in decisions"), default="", choices=[
        SelectChoice("", "—"), *labelled(DECISION_ROLES, DECISION_ROLE_LABELS)])
    phones = LinesField(lazy_gettext("Phones (one per line)"), [Normalised(normal_phone)])
    emails = LinesField(lazy_gettext("E-mails (one per line)"), [Normalised(normal_email)])
    birthday = IsoDateField(lazy_gettext("Birthday"), [Optional()])


class InteractionForm(WebForm):
    kind = SelectField(lazy_gettext("Kind"), choices=labelled(InteractionKind))
    status = SelectField(lazy_gettext("Status"), choices=labelled(InteractionStatus),
                         default=InteractionStatus.DONE)
    subject = StringField(lazy_gettext("Subject"), [required(), at_most(300)])
    notes = TextAreaField(lazy_gettext("Notes"))


class DealForm(WebForm):
    kind = SelectField(lazy_gettext("Kind"), choices=labelled(DealKind))
    title = StringField(lazy_gettext("Title"), [required(), at_most(300)])
    # The column holds 14 digits, 2 of them after the point.
    amount = AmountField(lazy_gettext("Amount"), [Optional()], largest=Decimal("999999999999.99"))


class ClaimForm(WebForm):
    """A claim registered by the staff (C1)."""

    complainant = StringField(lazy_gettext("Who complained"), [required(), at_most(300)])
    reason = SelectField(lazy_gettext("Reason"), choices=labelled(CLAIM_REASONS))
    essence = TextAreaField(lazy_gettext("Essence"), [required()])
    attachments = MultipleFileField(lazy_gettext("Files"), [Files(MAX_ATTACHMENTS, MAX_ATTACHMENT_BYTES)])


class SelfServiceClaimForm(ClaimForm):
    """A claim the customer files themselves (C5), saying who they are."""

    identity = StringField(lazy_gettext("Your e-mail, phone or tax id (INN), as we know you"), [required(
        lazy_gettext("Enter the e-mail, phone or tax id (INN) we know you by."))])
    complainant = StringField(lazy_gettext("Your name"), [required(), at_most(300)])
    reason = SelectField(lazy_gettext("What is it about?"), choices=labelled(CLAIM_REASONS))
    essence = TextAreaField(lazy_gettext("What happened"), [required()])
    attachments = MultipleFileField(lazy_gettext("Photos or documents (optional)"),
                                    [Files(MAX_ATTACHMENTS, MAX_ATTACHMENT_BYTES)])
    website = StringField("Website")  # the honeypot: hidden from people by CSS; bots fill every field


# -- the pages ----------------------------------------------------------------------------


@bp.route("/customers/")
@role_required(*STAFF)
def index():
    query = request.args.get("q", "").strip()[:100]
    found = crm().search_customers(query) if query else []
    return render_template("customers.html", query=query, found=found)


CARD_FORMS = {"contact": ContactForm, "interaction": InteractionForm, "deal": DealForm, "claim": ClaimForm}


@bp.route("/customers/<int:customer_id>")
@role_required(*STAFF)
def card(customer_id: int):
    return _card_page(customer_id)


def _card_page(customer_id: int, status: int = 200, **submitted: WebForm):
    """The customer card with its forms: empty ones, and the one just ``submitted`` as it
    came, with its messages."""
    card = crm().customer_card(customer_id)
    forms = {name: submitted.get(name) or form(formdata=None) for name, form in CARD_FORMS.items()}
    return render_template("customer.html", card=card, now=engine().clock(), forms=forms,
                           decision_roles=DECISION_ROLE_LABELS), status


@bp.route("/customers/new", methods=["GET", "POST"])
@role_required(*STAFF)
def register():
    form = RegistrationForm()
    if not form.validate_on_submit():
        return render_template("customer_new.html", form=form, duplicates=[]), 422 if form.is_submitted() else 200
    draft = CustomerDraft(
        name=form.name.data.strip(), kind=form.kind.data, inn=blank_to_none(form.inn.data), phones=form.phones.data,
        emails=form.emails.data, category=blank_to_none(form.category.data), curator=current_user.username,
    )
    try:
        registration = crm().register_customer(draft, current_user.username,
                                               allow_duplicates=form.deliberate.data == "yes")
    except DuplicateCustomer as duplicates:
        # D2: the likely duplicates are shown before saving; registering anyway is a deliberate second click.
        return render_template("customer_new.html", form=form, duplicates=duplicates.candidates), 409
    except CrmflowError as refused:
        status = show_refusal(form, refused)
        return render_template("customer_new.html", form=form, duplicates=[]), status
    flash(_("Registered %(name)s.", name=registration.customer.name), "success")
    return redirect(url_for("customers.card", customer_id=registration.customer.id))


@bp.route("/customers/<int:customer_id>/edit", methods=["GET", "POST"])
@role_required(*STAFF)
def edit(customer_id: int):
    customer = crm().customer(customer_id)
    form = CustomerForm(obj=customer)
    if not form.validate_on_submit():
        return render_template("customer_edit.html", customer=customer, form=form, duplicates=[]), \
            422 if form.is_submitted() else 200
    draft = CustomerDraft(
        name=form.name.data.strip(), kind=form.kind.data, partner_role=form.partner_role.data,
        status=form.status.data, inn=blank_to_none(form.inn.data), phones=form.phones.data, emails=form.emails.data,
        category=blank_to_none(form.category.data), relationship_stage=blank_to_none(form.relationship_stage.data),
        importance=form.importance.data or None, curator=customer.curator.username if customer.curator else None,
        addresses=customer.addresses, properties=customer.properties,
    )
    try:
        crm().update_customer(customer_id, draft, current_user.username,
                              allow_duplicates=form.deliberate.data == "yes")
    except DuplicateCustomer as duplicates:
        return render_template("customer_edit.html", customer=customer, form=form,
                               duplicates=duplicates.candidates), 409
    except CrmflowError as refused:
        status = show_refusal(form, refused)
        return render_template("customer_edit.html", customer=customer, form=form, duplicates=[]), status
    return _after(customer_id, _("Saved %(name)s.", name=draft.name))


@bp.route("/customers/<int:customer_id>/contacts", methods=["POST"])
@role_required(*STAFF)
def add_contact(customer_id: int):
    form = ContactForm()
    if not form.validate():
        return _card_page(customer_id, 422, contact=form)
    contact = ContactDraft(name=form.name.data.strip(), position=blank_to_none(form.position.data),
                           decision_role=form.decision_role.data or None, phones=form.phones.data,
                           emails=form.emails.data, birthday=form.birthday.data)
    try:
        crm().add_contact(customer_id, contact, current_user.username)
    except CrmflowError as refused:
        # The CRM names the contact's fields as the first contact of a customer: contacts[1].name ...
        aliases = {f"contacts[1].{field.name}": field.name for field in form}
        return _card_page(customer_id, show_refusal(form, refused, aliases), contact=form)
    return _after(customer_id, _("%(name)s is a contact person now.", name=contact.name))


def _after(customer_id: int, message: str):
    flash(message, "success")
    return redirect(url_for("customers.card", customer_id=customer_id))


@bp.route("/customers/<int:customer_id>/interactions", methods=["POST"])
@role_required(*STAFF)
def log_interaction(customer_id: int):
    form = InteractionForm()
    if not form.validate():
        return _card_page(customer_id, 422, interaction=form)
    try:
        crm().log_interaction(customer_id, form.kind.data, form.subject.data, current_user.username,
                              status=form.status.data, notes=blank_to_none(form.notes.data))
    except CrmflowError as refused:
        return _card_page(customer_id, show_refusal(form, refused), interaction=form)
    return _after(customer_id, _("The interaction is on the timeline."))


@bp.route("/customers/<int:customer_id>/deals", methods=["POST"])
@role_required(*STAFF)
def start_deal(customer_id: int):
    form = DealForm()
    if not form.validate():
        return _card_page(customer_id, 422, deal=form)
    try:
        deal = crm().start_deal(form.kind.data, customer_id, current_user.username, form.title.data,
                                current_user.username, amount=form.amount.data)
    except CrmflowError as refused:
        return _card_page(customer_id, show_refusal(form, refused), deal=form)
    return _after(customer_id, _("Deal %(number)s started.", number=getattr(deal, "number", None) or deal.id))


@bp.route("/customers/<int:customer_id>/claims", methods=["POST"])
@role_required(*STAFF)
def register_claim(customer_id: int):
    form = ClaimForm()
    if not form.validate():
        return _card_page(customer_id, 422, claim=form)
    try:
        claim = crm().register_claim(_claim_draft(customer_id, form), current_user.username)
    except CrmflowError as refused:
        return _card_page(customer_id, show_refusal(form, refused), claim=form)
    return _after(customer_id, _("Claim %(number)s registered; its investigation has started.", number=claim.number))


def _claim_draft(customer_id: int, form: ClaimForm) -> ClaimDraft:
    # The browser names the type of a file; the page always sends files back as downloads.
    attachments = [(upload.filename, upload.mimetype[:100], upload.read()) for upload in form.attachments.data or []]
    return ClaimDraft(customer_id=customer_id, complainant=form.complainant.data, essence=form.essence.data,
                      reason=form.reason.data, attachments=attachments)


# -- self-service (C5) --------------------------------------------------------------------


@bp.route("/claim", methods=["GET", "POST"])
def self_service():
    """A customer files a claim without a staff login. They identify themselves by an
    e-mail, phone or tax id the company has on file."""
    form = SelfServiceClaimForm()
    if not form.is_submitted():
        return render_template("claim_form.html", form=form)
    if form.website.data:
        # Answer as if accepted, so a bot learns nothing; nothing is stored.
        return render_template("claim_done.html", number=None)
    valid = form.validate()
    identity = (form.identity.data or "").strip()
    exact = [c for c in crm().search_customers(identity, limit=2) if _identifies(c, identity)] if identity else []
    if identity and len(exact) != 1:
        form.identity.errors.append(_("We could not find a customer with these details. Check them, or call us."))
        valid = False
    if not valid:
        return render_template("claim_form.html", form=form), 422
    try:
        claim = crm().register_claim(_claim_draft(exact[0].id, form), None)
    except CrmflowError as refused:
        status = show_refusal(form, refused)
        return render_template("claim_form.html", form=form), status
    return render_template("claim_done.html", number=claim.number)


def _too_many_claims(_limit) -> Response:
    form = SelfServiceClaimForm()
    form.form_errors.append(_("Too many claims from your address; please try again in an hour or call us."))
    return make_response(render_template("claim_form.html", form=form), 429)


def _identifies(customer, identity: str) -> bool:
    """Only an exact e-mail, phone or INN identifies: a part of a name is not proof. The
    customer's own values are stored normalised (processes.customers.check_draft)."""
    for normalise, known in ((normal_email, customer.emails), (normal_phone, customer.phones),
                             (normal_inn, [customer.inn] if customer.inn else [])):
        try:
            if normalise(identity) in known:
                return True
        except ValueError:
            continue
    return False

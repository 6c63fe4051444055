"""Russian and English, chosen per user; dates, durations and numbers in their locale;
the engine's and the CRM's texts and errors (``engine.texts``) in the reader's language."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from babel import dates as babel_dates
from flask import current_app, request
from flask_babel import Babel, format_decimal, get_locale, get_timezone
from flask_babel import gettext as _
from flask_babel import lazy_gettext, ngettext
from flask_login import current_user

from engine.texts import LOCALES, language_of


def select_locale() -> str:
    if current_user and current_user.is_authenticated:
        return current_user.locale
    return request.accept_languages.best_match(list(LOCALES)) or "ru"


def init_app(app) -> None:
    Babel(app, locale_selector=select_locale)
    app.jinja_env.filters["number"] = format_decimal
    app.jinja_env.filters["label"] = label
    app.jinja_env.filters["lost_reason"] = lost_reason
    app.jinja_env.filters["local"] = local


def local(value: Any) -> Any:
    """A text of the engine or the CRM in the reader's language: anything with
    ``render(locale)`` (a ``Text``, a ``CrmflowError``, a ``FieldError``, a duplicate's
    reason); anything else as it is."""
    render = getattr(value, "render", None)
    return render(language_of(get_locale())) if callable(render) else value


def local_errors(errors: Mapping[str, Any]) -> dict[str, Any]:
    """Field errors (``InvalidData.errors``, ``InvalidFormData.errors``) in the reader's language."""
    return {name: local(problem) for name, problem in errors.items()}


def sentence(text: str) -> str:
    """A field's message on its own beside the field: "must be at most 50" as "Must be at most 50."."""
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?", "»", "”")) else text + "."


class Dates:
    """Date helpers for the templates (``dates.when(item.due_at)`` and so on), with the
    user's locale and time zone looked up once per page rather than once per date."""

    def __init__(self):
        self.locale = get_locale()
        self.timezone = get_timezone()
        self.calendar = current_app.extensions["crmflow"].engine.working_calendar

    def when(self, moment: datetime | None) -> str:
        return babel_dates.format_datetime(moment, "short", tzinfo=self.timezone, locale=self.locale) if moment else "—"

    def lateness(self, due: datetime, now: datetime) -> str:
        """How late, in working days once it is a day or more, otherwise in hours."""
        days = self.calendar.working_days_late(due, now)
        if days >= 1:
            return ngettext("%(num)d working day late", "%(num)d working days late", days)
        return _("%(span)s late", span=self._span(now - due))

    def remaining(self, due: datetime, now: datetime) -> str:
        return _("%(span)s left", span=self._span(max(due - now, timedelta())))

    def _span(self, delta: timedelta) -> str:
        return babel_dates.format_timedelta(delta, threshold=1.0, locale=self.locale)


EVENT_LABELS = {
    "instance_started": lazy_gettext("Process started"),
    "instance_completed": lazy_gettext("Process finished"),
    "task_completed": lazy_gettext("Step done"),
    "work_item_created": lazy_gettext("Task created"),
    "work_item_claimed": lazy_gettext("Task taken"),
    "work_item_completed": lazy_gettext("Task completed"),
    "work_item_reassigned": lazy_gettext("Task reassigned"),
    "work_item_cancelled": lazy_gettext("Task cancelled"),
    "stage_entered": lazy_gettext("Stage entered"),
    "stage_left": lazy_gettext("Stage left"),
    "timer_fired": lazy_gettext("Timer fired"),
    "escalated": lazy_gettext("Escalated"),
    "message_sent": lazy_gettext("Message sent"),
    "message_received": lazy_gettext("Message received"),
}
STATUS_LABELS = {
    "open": lazy_gettext("open"),
    "running": lazy_gettext("running"),
    "completed": lazy_gettext("completed"),
    "cancelled": lazy_gettext("cancelled"),
}
# The CRM domain's codes (processes.models, processes.crm) as people read them.
DOMAIN_LABELS = {
    "organisation": lazy_gettext("organisation"),
    "person": lazy_gettext("private person"),
    "customer": lazy_gettext("customer"),
    "supplier": lazy_gettext("supplier"),
    "competitor": lazy_gettext("competitor"),
    "other": lazy_gettext("other"),
    "potential": lazy_gettext("potential"),
    "existing": lazy_gettext("existing"),
    "former": lazy_gettext("former"),
    "typical": lazy_gettext("typical sale"),
    "manual": lazy_gettext("deal with manual stages"),
    "project": lazy_gettext("project (no stages)"),
    "claim": lazy_gettext("claim"),
    "in_progress": lazy_gettext("in progress"),
    "won": lazy_gettext("won"),
    "lost": lazy_gettext("lost"),
    "triage": lazy_gettext("triage"),
    "investigation": lazy_gettext("investigation"),
    "resolution": lazy_gettext("resolution"),
    "informing": lazy_gettext("informing the customer"),
    "closed": lazy_gettext("closed"),
    "meeting": lazy_gettext("meeting"),
    "call_in": lazy_gettext("incoming call"),
    "call_out": lazy_gettext("outgoing call"),
    "email": lazy_gettext("e-mail"),
    "letter": lazy_gettext("letter"),
    "note": lazy_gettext("note"),
    "planned": lazy_gettext("planned"),
    "done": lazy_gettext("done"),
    "quality": lazy_gettext("quality"),
    "delivery_delay": lazy_gettext("late delivery"),
    "wrong_goods": lazy_gettext("wrong goods"),
    "damaged": lazy_gettext("damaged goods"),
    "billing": lazy_gettext("billing"),
    "service": lazy_gettext("service"),
    "staff": lazy_gettext("staff behaviour"),
    # sales stages (processes.stages) and how a deal moved between them
    "first_contact": lazy_gettext("First contact"),
    "needs_analysis": lazy_gettext("Needs analysis"),
    "classification": lazy_gettext("Customer classification"),
    "commercial_offer": lazy_gettext("Commercial offer"),
    "negotiation": lazy_gettext("Negotiation"),
    "contract": lazy_gettext("Contract"),
    "payment": lazy_gettext("Payment"),
    "shipment": lazy_gettext("Shipment"),
    "start": lazy_gettext("start"),
    "forward": lazy_gettext("forward"),
    "skip": lazy_gettext("skip"),
    "back": lazy_gettext("back"),
    # how a claim ended
    "satisfied": lazy_gettext("satisfied"),
    "partly_satisfied": lazy_gettext("partly satisfied"),
    "rejected": lazy_gettext("rejected"),
}

# Why deals are lost (processes.stages.LOST_REASONS): codes that overlap the labels above.
LOST_REASON_LABELS = {
    "price": lazy_gettext("Price too high"),
    "competitor": lazy_gettext("Chose a competitor"),
    "no_budget": lazy_gettext("No budget"),
    "no_need": lazy_gettext("Need disappeared"),
    "no_response": lazy_gettext("Customer stopped responding"),
    "terms": lazy_gettext("Payment or delivery terms not acceptable"),
    "other": lazy_gettext("Other"),
}


def lost_reason(code: str) -> str:
    return str(LOST_REASON_LABELS.get(code, code))


def label(kind: str) -> str:
    """A history event type, a status or a domain code in the user's language."""
    return str(EVENT_LABELS.get(kind) or STATUS_LABELS.get(kind) or DOMAIN_LABELS.get(kind) or kind)

"""One process instance: its diagram with completed, current and overdue steps marked,
the history timeline, and the data entered."""

from __future__ import annotations

from flask import Blueprint, abort, render_template
from flask_login import current_user

from webui import readmodel
from webui.access import engine, role_required
from webui.diagrams import process_file
from webui.readmodel import EventType
from webui.visibility import may_see_instance

bp = Blueprint("instances", __name__, url_prefix="/instances")


@bp.route("/<int:instance_id>")
@role_required()
def show(instance_id: int):
    with engine().reading() as session:
        instance = readmodel.instance(session, instance_id)
        if instance is None:
            abort(404)
        if not may_see_instance(session, current_user, instance):
            abort(403)
        definition = readmodel.definition_with_sources(session, instance.definition_id)
        names = readmodel.item_names(session, instance_id)
    details = engine().instance(instance_id)
    now = engine().clock()
    _file, xml = process_file(definition)
    completed = sorted({e.task_spec for e in details.history
                        if e.type == EventType.TASK_COMPLETED and e.task_spec})
    current = sorted({item.task_spec for item in details.open_items})
    overdue = sorted({item.task_spec for item in details.open_items if item.due_at and item.due_at < now})
    entered = [(names.get(e.work_item_id, e.task_spec), e) for e in details.history
               if e.type == EventType.WORK_ITEM_COMPLETED and e.detail and e.detail.get("data")]
    return render_template(
        "instance.html", instance=details.instance, definition=definition, data=sorted(details.data.items()),
        open_items=details.open_items, history=list(reversed(details.history)), item_names=names, xml=xml,
        markers={"completed": completed, "current": current, "overdue": overdue}, entered=entered, now=now,
    )

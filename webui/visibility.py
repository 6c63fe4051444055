"""Who may see a work item or a process instance, and who may act on an item: one policy for
the HTML pages and the REST API.

- An **item** is visible to admins; to its assignee and to whoever completed it; to its
  candidates (by name or through a group) while it is unassigned; to the heads of the groups
  it is offered to; to whoever is responsible for its assignee or its completer (reports
  down the line, members of the groups they head); and to a former assignee, so that a page
  they had open explains what happened instead of refusing them.
- An **instance** is visible to designers and admins; to whoever started it; and to anyone
  who, or one of whose people, took part in it (an item assigned to or completed by them, or
  offered to them or their groups, those they head included).
- To **act** on an item (complete it, or claim it first) it must be open and be the person's,
  or be unassigned and offered to them. The engine checks again when it changes anything.
- To **change a deal** (its plan, its tasks, closing it) one must be its curator, manage the
  curator (up the line, or heading one of their groups) or be an admin: the CRM facade's rule
  (``processes.crm.base.manages``), asked before a form is checked, so that someone who may
  not change the deal is told that first. The facade checks again when it changes the deal.

A ``Visibility`` answers for one person within one read session and asks for their team
once, however many items it is asked about.
"""

from __future__ import annotations

from functools import cached_property

from sqlalchemy.orm import Session

from processes.crm.base import manages
from webui import readmodel
from webui.readmodel import ItemStatus, Viewer


class Visibility:
    def __init__(self, session: Session, viewer: Viewer):
        self.session = session
        self.viewer = viewer

    @cached_property
    def team(self) -> set[int]:
        return readmodel.team_ids(self.session, self.viewer)

    def may_see_item(self, item: readmodel.WorkItem) -> bool:
        return self.may_see_items([item])[0]

    def may_see_items(self, items: list[readmodel.WorkItem]) -> list[bool]:
        """``may_see_item`` of each, asking the history once for those no other rule admits."""
        seen = [self._sees_without_history(item) for item in items]
        unsettled = [item.id for item, sees in zip(items, seen) if not sees]
        handed_on = readmodel.handed_on_from(self.session, unsettled, self.viewer.username) if unsettled else set()
        return [sees or item.id in handed_on for item, sees in zip(items, seen)]

    def _sees_without_history(self, item: readmodel.WorkItem) -> bool:
        viewer = self.viewer
        if viewer.is_admin:
            return True
        if viewer.id in (item.assignee_id, item.completed_by_id):
            return True
        offered_to = set(item.candidate_groups)
        if item.assignee_id is None and (viewer.username in item.candidate_users or offered_to & set(viewer.groups)):
            return True
        if offered_to & set(viewer.headed_groups):
            return True
        return bool(self.team & {item.assignee_id, item.completed_by_id} - {None})

    def may_see_instance(self, instance: readmodel.ProcessInstance) -> bool:
        viewer = self.viewer
        if viewer.is_admin or viewer.is_designer:
            return True
        if instance.started_by == viewer.username:
            return True
        return readmodel.took_part(self.session, instance.id, {viewer.id} | self.team,
                                   set(viewer.groups) | set(viewer.headed_groups), viewer.username)


def may_see_item(session: Session, viewer: Viewer, item: readmodel.WorkItem) -> bool:
    return Visibility(session, viewer).may_see_item(item)


def may_see_instance(session: Session, viewer: Viewer, instance: readmodel.ProcessInstance) -> bool:
    return Visibility(session, viewer).may_see_instance(instance)


def may_act(viewer: Viewer, item: readmodel.WorkItem) -> bool:
    """The item is open and the viewer's, or unassigned and offered to them."""
    if item.status != ItemStatus.OPEN:
        return False
    if item.assignee_id == viewer.id:
        return True
    return item.assignee_id is None and (
        viewer.username in item.candidate_users or bool(set(item.candidate_groups) & set(viewer.groups))
    )


def may_change_deal(session: Session, viewer: Viewer, curator_id: int) -> bool:
    if viewer.id == curator_id:
        return True
    actor, curator = readmodel.user_with_groups(session, viewer.id), readmodel.user_with_groups(session, curator_id)
    return actor is not None and curator is not None and manages(session, actor, curator)

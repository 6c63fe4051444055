"""The CRM domain facade: customers, interactions, deals of three kinds, claims, the
customer card and curator changes. The CLI and the web UI call this; it calls the engine.

Each part is a module of its own: ``registry`` (customers, contacts, interactions),
``deals``, ``claims``, ``card`` (the customer card), ``handover`` (curator changes).
Deal and claim records follow their process instances through an engine step listener
(``following``): stage changes, moves, outcomes and investigation results are written in
the same transaction as the engine step that caused them, so they can never disagree.
The composition root (``processes.system``) creates one ``Crm`` per engine and registers
that listener.
"""

from __future__ import annotations

from engine.runtime import Engine
from processes.crm.card import CardProcess, CustomerCard, CustomerCards
from processes.crm.claims import ClaimDraft, Claims, PlannedActivity, parse_plan
from processes.crm.deals import Deals, StagePlanRow
from processes.crm.definitions import CLAIM_PROCESS, CLAIM_REASONS, DEAL_PROCESSES, PROJECT_TASK_PROCESS
from processes.crm.handover import Handovers
from processes.crm.registry import CustomerRegistry, Registration

__all__ = [
    "CLAIM_PROCESS", "CLAIM_REASONS", "DEAL_PROCESSES", "PROJECT_TASK_PROCESS", "CardProcess", "ClaimDraft", "Crm",
    "CustomerCard", "PlannedActivity", "Registration", "StagePlanRow", "parse_plan",
]


class Crm(CustomerRegistry, Deals, Claims, CustomerCards, Handovers):
    """The CRM facade on one engine."""

    def __init__(self, engine: Engine):
        self.engine = engine

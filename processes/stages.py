"""The sales stages shared by the typical sale and the manual deal (S1, S2, S4).

The BPMN diagrams name each stage by its label (the ``stage`` property of a user task);
the domain stores the stage code. Planned durations give each new deal its plan.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    code: str
    label: str
    planned_days: int  # how long the stage normally takes; the deal's plan adds these up


STAGES: tuple[Stage, ...] = (
    Stage("first_contact", "First contact", 2),
    Stage("needs_analysis", "Needs analysis", 5),
    Stage("classification", "Customer classification", 2),
    Stage("commercial_offer", "Commercial offer", 3),
    Stage("negotiation", "Negotiation", 7),
    Stage("contract", "Contract", 3),
    Stage("payment", "Payment", 10),
    Stage("shipment", "Shipment", 5),
)
STAGE_CODES = tuple(stage.code for stage in STAGES)
BY_CODE = {stage.code: stage for stage in STAGES}
BY_LABEL = {stage.label: stage for stage in STAGES}

WON, LOST = "won", "lost"

# Why deals are lost: the enum of the "Record the loss" forms, and the funnel's categories.
LOST_REASONS: dict[str, str] = {
    "price": "Price too high",
    "competitor": "Chose a competitor",
    "no_budget": "No budget",
    "no_need": "Need disappeared",
    "no_response": "Customer stopped responding",
    "terms": "Payment or delivery terms not acceptable",
    "other": "Other",
}


def stage_index(code: str) -> int:
    """Position in the sales sequence; won comes after the last stage."""
    if code == WON:
        return len(STAGES)
    return STAGE_CODES.index(code)


def move_direction(from_code: str | None, to_code: str) -> str:
    """forward (the next stage), skip (jumps over stages), back, won, lost, or start."""
    if from_code is None:
        return "start"
    if to_code == LOST:
        return LOST
    if to_code == WON and from_code == STAGES[-1].code:
        return WON
    step = stage_index(to_code) - stage_index(from_code)
    if step == 1:
        return "forward"
    return "skip" if step > 1 else "back"

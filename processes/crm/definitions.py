"""The BPMN processes the CRM keeps records of, and the domain's fixed lists."""

from __future__ import annotations

from processes.models import ClaimStatus, DealKind, InteractionKind

DEAL_PROCESSES = {DealKind.TYPICAL: "typical_sale", DealKind.MANUAL: "manual_deal"}
CLAIM_PROCESS = "claim_investigation"
PROJECT_TASK_PROCESS = "project_task"
# The lane of the deal processes whose steps belong to the deal's curator.
CURATOR_LANE = "sales"
CLAIM_REASONS = ("quality", "delivery_delay", "wrong_goods", "damaged", "billing", "service", "staff", "other")
CLAIM_RESPONSE_WORKING_DAYS = 10
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
CLAIM_STAGES = {
    "Triage": ClaimStatus.TRIAGE,
    "Investigation plan": ClaimStatus.INVESTIGATION,
    "Investigation": ClaimStatus.INVESTIGATION,
    "Resolution": ClaimStatus.RESOLUTION,
    "Customer informed": ClaimStatus.INFORMING,
}
INFORMED_BY = {"call": InteractionKind.CALL_OUT, "email": InteractionKind.EMAIL,
               "letter": InteractionKind.LETTER, "meeting": InteractionKind.MEETING}

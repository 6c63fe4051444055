"""The BPMN processes the CRM keeps records of, and the domain's fixed lists."""

from __future__ import annotations

from processes.models import ClaimStatus, DealKind, InteractionKind

DEAL_PROCESSES = {DealKind.TYPICAL.value: "typical_sale", DealKind.MANUAL.value: "manual_deal"}
CLAIM_PROCESS = "claim_investigation"
PROJECT_TASK_PROCESS = "project_task"
# The lane of the deal processes whose steps belong to the deal's curator.
CURATOR_LANE = "sales"
CLAIM_REASONS = ("quality", "delivery_delay", "wrong_goods", "damaged", "billing", "service", "staff", "other")
CLAIM_RESPONSE_WORKING_DAYS = 10
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
CLAIM_STAGES = {
    "Triage": ClaimStatus.TRIAGE.value,
    "Investigation plan": ClaimStatus.INVESTIGATION.value,
    "Investigation": ClaimStatus.INVESTIGATION.value,
    "Resolution": ClaimStatus.RESOLUTION.value,
    "Customer informed": ClaimStatus.INFORMING.value,
}
INFORMED_BY = {"call": InteractionKind.CALL_OUT.value, "email": InteractionKind.EMAIL.value,
               "letter": InteractionKind.LETTER.value, "meeting": InteractionKind.MEETING.value}

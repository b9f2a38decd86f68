"""Read-only views of the queues for the staff pages and the API: counts and related rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise.functions import Count
from tortoise.queryset import QuerySet

from campaigns.escalations.lifecycle import ACTIVE_STATUSES
from campaigns.models import Escalation, EscalationStatus

# The statuses `is_overdue` judges: someone should be working on these.
WAITING_STATUSES = (EscalationStatus.OPEN, EscalationStatus.CLAIMED)


@dataclass(frozen=True)
class QueueCounts:
    active: int = 0  # not resolved: open, claimed or snoozed
    waiting: int = 0  # open or claimed
    overdue: int = 0  # open or claimed, past the due time
    mine: int = 0  # active and assigned to the staff member asked about


async def queue_counts(
    queues: list[str], *, now: datetime, staff_id: int | None = None
) -> dict[str, QueueCounts]:
    """The counts of each queue in ``queues`` (every one present, zero when empty)."""
    # SQLite compares stored datetimes as UTC text: the bound instant must be UTC too.
    now = now.astimezone(UTC)
    by_status = (
        await Escalation.filter(queue__in=queues, status__in=list(ACTIVE_STATUSES))
        .annotate(n=Count("id"))
        .group_by("queue", "status")
        .values("queue", "status", "n")
    )
    active: dict[str, int] = {}
    waiting: dict[str, int] = {}
    for row in by_status:
        active[row["queue"]] = active.get(row["queue"], 0) + row["n"]
        if EscalationStatus(row["status"]) in WAITING_STATUSES:
            waiting[row["queue"]] = waiting.get(row["queue"], 0) + row["n"]
    overdue = await _per_queue(
        Escalation.filter(queue__in=queues, status__in=list(WAITING_STATUSES), due_at__lt=now)
    )
    mine: dict[str, int] = {}
    if staff_id is not None:
        mine = await _per_queue(
            Escalation.filter(
                queue__in=queues, status__in=list(ACTIVE_STATUSES), assignee_id=staff_id
            )
        )
    return {
        code: QueueCounts(
            active=active.get(code, 0),
            waiting=waiting.get(code, 0),
            overdue=overdue.get(code, 0),
            mine=mine.get(code, 0),
        )
        for code in queues
    }


async def _per_queue(query: QuerySet[Escalation]) -> dict[str, int]:
    rows = await query.annotate(n=Count("id")).group_by("queue").values("queue", "n")
    return {row["queue"]: row["n"] for row in rows}


async def load_assignee(escalation: Escalation) -> Escalation:
    """The escalation with its assignee loaded, as the API describes it."""
    await escalation.fetch_related("assignee")
    return escalation

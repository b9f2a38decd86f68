"""Taking calls: "Prendre l'appel suivant" is atomic, as for escalations.

A caller may take the tasks assigned to them and the pool of the running call campaigns
they are named on. A task taken from the pool becomes theirs: its retries come back to
the same voice. Someone who left a call open gets it back first.
"""

from __future__ import annotations

from datetime import datetime

from tortoise.expressions import Q
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from campaigns.calls.callers import campaigns_called_by, running_call_campaigns
from campaigns.calls.generation import OPEN_STATUSES
from campaigns.core import audit
from campaigns.core.clock import as_utc
from campaigns.core.db import on_postgres
from campaigns.core.errors import Conflict, Forbidden, NotFound
from campaigns.models import CallStatus, CallTask, Staff
from campaigns.staff import actor_for, is_manager

_ROUNDS = 5
_BATCH = 10


async def _claimable(staff: Staff, now: datetime, campaign_id: int | None) -> QuerySet[CallTask]:
    pools = await campaigns_called_by(staff.id)
    own = Q(assignee_id=staff.id)
    mine = own | Q(assignee_id__isnull=True, campaign_id__in=pools) if pools else own
    query = CallTask.filter(mine, status__in=list(OPEN_STATUSES), due_at__lte=as_utc(now))
    if campaign_id is not None:
        query = query.filter(campaign_id=campaign_id)
    # A task whose campaign is paused or cancelled waits; one running campaign list per call.
    running = await running_call_campaigns(
        [campaign_id] if campaign_id is not None else await _campaigns_with_tasks(staff, pools)
    )
    return query.filter(campaign_id__in=running or [0])


async def _campaigns_with_tasks(staff: Staff, pools: list[int]) -> list[int]:
    assigned = await (
        CallTask.filter(assignee_id=staff.id, status__in=list(OPEN_STATUSES))
        .distinct()
        .values_list("campaign_id", flat=True)
    )
    return sorted({*pools, *(int(str(a)) for a in assigned)})


async def claim_next(
    staff: Staff, now: datetime, campaign_id: int | None = None
) -> CallTask | None:
    """The caller's call in hand, else the most overdue call they may take, claimed."""
    current = (
        await CallTask.filter(assignee_id=staff.id, status=CallStatus.CLAIMED)
        .order_by("claimed_at", "id")
        .first()
    )
    if current is not None and campaign_id in (None, current.campaign_id):
        return current
    claimed: int | None = None
    query = (await _claimable(staff, now, campaign_id)).order_by("due_at", "id")
    for _ in range(_ROUNDS):
        if on_postgres():
            async with in_transaction():
                rows = await query.select_for_update(skip_locked=True).limit(1)
                if not rows:
                    return None
                claimed = await _take(staff, rows[0].id, now)
        else:
            ids = await query.limit(_BATCH).values_list("id", flat=True)
            if not ids:
                return None
            for candidate in ids:
                claimed = await _take(staff, int(str(candidate)), now)
                if claimed is not None:
                    break
        if claimed is not None:
            break
    if claimed is None:
        return None
    await audit.record(actor_for(staff), "call.claim", "call_task", claimed, via="next")
    return await CallTask.get(id=claimed)


async def _take(staff: Staff, task_id: int, now: datetime) -> int | None:
    # The update only wins while the task is still open and unassigned or the caller's own.
    changed = await CallTask.filter(
        Q(assignee_id__isnull=True) | Q(assignee_id=staff.id),
        id=task_id,
        status__in=list(OPEN_STATUSES),
    ).update(status=CallStatus.CLAIMED, assignee_id=staff.id, claimed_at=now, updated_at=now)
    return task_id if changed == 1 else None


async def task_for(staff: Staff, task_id: int) -> CallTask:
    """A task the caller may see: theirs, their pools', or any for a manager."""
    task = await CallTask.get_or_none(id=task_id)
    if task is None:
        raise NotFound("Appel introuvable.")
    if is_manager(staff) or task.assignee_id == staff.id:
        return task
    if task.assignee_id is None and task.campaign_id in await campaigns_called_by(staff.id):
        return task
    # Same answer as a missing task: a volunteer learns nothing of others' calls.
    raise NotFound("Appel introuvable.")


async def release(staff: Staff, task_id: int, now: datetime) -> CallTask:
    """Put a claimed call back (the caller has to stop): it stays theirs if it was."""
    task = await task_for(staff, task_id)
    if task.status != CallStatus.CLAIMED:
        raise Conflict("Cet appel n'est pas en cours.", code="not_claimed")
    if task.assignee_id != staff.id and not is_manager(staff):
        raise Forbidden("Cet appel est pris par un·e collègue.")
    back = CallStatus.RETRY if task.attempts else CallStatus.TODO
    await CallTask.filter(id=task.id, status=CallStatus.CLAIMED).update(
        status=back, claimed_at=None, updated_at=now
    )
    await audit.record(actor_for(staff), "call.release", "call_task", task.id)
    return await CallTask.get(id=task.id)

"""What the HTTP layer asks of call campaigns, each answer ready to serialise."""

from __future__ import annotations

from typing import Any

from campaigns.calls import coverage as coverage_module
from campaigns.calls import outcomes, taking
from campaigns.calls.callers import call_campaign
from campaigns.calls.sheet import call_sheet, staff_names, task_row
from campaigns.core import audit
from campaigns.core.errors import Invalid
from campaigns.core.runtime import Runtime
from campaigns.models import CallStatus, CallTask, Staff
from campaigns.staff import actor_for


async def list_tasks(
    campaign_id: int, *, status: str | None, offset: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    await call_campaign(campaign_id)
    query = CallTask.filter(campaign_id=campaign_id)
    if status:
        try:
            query = query.filter(status=CallStatus(status))
        except ValueError:
            raise Invalid("Statut d'appel inconnu.", code="bad_filter") from None
    total = await query.count()
    tasks = await query.order_by("-cycle", "due_at", "id").offset(offset).limit(limit)
    names = await staff_names({t.assignee_id for t in tasks})
    return [task_row(t, names) for t in tasks], total


async def take_next(
    staff: Staff, runtime: Runtime, campaign_id: int | None
) -> dict[str, Any] | None:
    now = runtime.clock()
    task = await taking.claim_next(staff, now, campaign_id)
    if task is None:
        return None
    return await call_sheet(staff, task, runtime.settings)


async def sheet(staff: Staff, task_id: int, runtime: Runtime) -> dict[str, Any]:
    task = await taking.task_for(staff, task_id)
    return await call_sheet(staff, task, runtime.settings)


async def outcome(
    staff: Staff, task_id: int, request: outcomes.OutcomeRequest, runtime: Runtime
) -> dict[str, Any]:
    task = await outcomes.record_outcome(staff, task_id, request, runtime)
    return task_row(task, await staff_names({task.assignee_id}))


async def release(staff: Staff, task_id: int, runtime: Runtime) -> dict[str, Any]:
    task = await taking.release(staff, task_id, runtime.clock())
    return task_row(task, await staff_names({task.assignee_id}))


async def coverage(staff: Staff, campaign_id: int, runtime: Runtime) -> dict[str, Any]:
    data = await coverage_module.coverage(campaign_id, runtime.clock())
    # The lists name people: who looked at them is kept, as for any view of the register.
    await audit.record(actor_for(staff), "campaign.coverage", "campaign", campaign_id)
    return data

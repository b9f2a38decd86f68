"""What the HTTP layer asks of call campaigns, each answer ready to serialise."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from campaigns.calls import coverage as coverage_module
from campaigns.calls import outcomes, taking
from campaigns.calls.callers import call_campaign, campaigns_called_by, running_call_campaigns
from campaigns.calls.generation import OPEN_STATUSES
from campaigns.calls.sheet import call_sheet, staff_names, task_row
from campaigns.core import audit
from campaigns.core.errors import Invalid
from campaigns.core.runtime import Runtime
from campaigns.models import CallStatus, CallTask, Campaign, Person, Staff
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


MY_CALLS_LIMIT = 100


async def my_calls(staff: Staff, now: datetime) -> dict[str, Any]:
    """A caller's own calls (in hand, due, planned later) and how many wait in their pools.

    Only the calls assigned to them are named: the pool is a count, so that a volunteer
    never reads a list of the register, only the person "next" gives them.
    """
    own = CallTask.filter(assignee_id=staff.id)
    in_hand = await own.filter(status=CallStatus.CLAIMED).order_by("claimed_at", "id")
    due = (
        await own.filter(status__in=list(OPEN_STATUSES), due_at__lte=now)
        .order_by("due_at", "id")
        .limit(MY_CALLS_LIMIT)
    )
    later = (
        await own.filter(status__in=list(OPEN_STATUSES), due_at__gt=now)
        .order_by("due_at", "id")
        .limit(MY_CALLS_LIMIT)
    )
    running = await running_call_campaigns(await campaigns_called_by(staff.id))
    pool_due = await CallTask.filter(
        assignee_id__isnull=True,
        campaign_id__in=running or [0],
        status__in=list(OPEN_STATUSES),
        due_at__lte=now,
    ).count()
    tasks = [*in_hand, *due, *later]
    people = {
        p.id: p for p in await Person.filter(id__in=[t.person_id for t in tasks if t.person_id])
    }
    campaigns = {
        c.id: c.name for c in await Campaign.filter(id__in=list({t.campaign_id for t in tasks}))
    }

    def row(task: CallTask) -> dict[str, Any]:
        person = people.get(task.person_id or 0)
        return {
            **task_row(task, {}),
            "name": person.display_name if person else "Personne effacée",
            "campaign_name": campaigns.get(task.campaign_id, ""),
        }

    if tasks:
        # Names of people were shown: who looked, and how many, is kept like any view.
        await audit.record(actor_for(staff), "call.list", "staff", staff.id, shown=len(tasks))
    return {
        "in_hand": [row(t) for t in in_hand],
        "due": [row(t) for t in due],
        "later": [row(t) for t in later],
        "pool_due": pool_due,
    }


async def person_name(person_id: int | None) -> str:
    """First and last name, all a caller may read of a person, for a confirmation."""
    person = await Person.get_or_none(id=person_id) if person_id else None
    return person.display_name if person else "une personne effacée"

"""Journeys: an SMS (or e-mail) invitation, a reminder to the silent, then their calls.

Each later step is a campaign of its own (`parent_id` the first one, `step` "relance" or
"appel") whose audience is the first campaign's, narrowed to those who have given no sign
since its launch (`silent_after`: no reply, no escalation, not reached by a call, not
opted out). A scheduler tick starts each step when its day comes; a reply or an opt-out
after a call task was made cancels that task; a message that failed (unknown number)
sends its person to the call step at once, without waiting for the reminder.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from campaigns.calls.callers import set_callers
from campaigns.calls.coverage import call_counts
from campaigns.calls.generation import OPEN_STATUSES, REACHED, create_tasks
from campaigns.campaign.launch import launch
from campaigns.campaign.lifecycle import S
from campaigns.core import audit
from campaigns.core.audit import Actor
from campaigns.core.errors import Conflict, Invalid, NotFound
from campaigns.core.runtime import Runtime
from campaigns.models import (
    CallStatus,
    CallTask,
    Campaign,
    CampaignRun,
    Message,
    MessageStatus,
    OptOut,
    Person,
    Reply,
    Template,
    TemplateVersion,
)

log = logging.getLogger(__name__)

# Journeys older than this are over: the tick stops looking at them.
ACTIVE_FOR = timedelta(days=150)
FAILED = (MessageStatus.FAILED, MessageStatus.REJECTED)
STEP_NAMES = {"relance": "relance", "appel": "appels"}


def step_times(parent: Campaign) -> dict[str, datetime]:
    """When each configured step starts, from the first campaign's launch."""
    journey, start = parent.journey or {}, parent.launched_at
    if start is None:
        return {}
    times: dict[str, datetime] = {}
    reminder = journey.get("reminder_days")
    if reminder:
        times["relance"] = start + timedelta(days=reminder)
    if journey.get("call_days"):
        times["appel"] = start + timedelta(days=(reminder or 0) + journey["call_days"])
    return times


async def _child(parent: Campaign, step: str) -> Campaign | None:
    return await Campaign.filter(parent_id=parent.id, step=step).order_by("id").first()


async def _make_child(parent: Campaign, step: str, template_id: int, now: datetime) -> Campaign:
    template = await Template.get(id=template_id)
    version = await TemplateVersion.get(template_id=template.id, version=template.current_version)
    criteria = dict((parent.audience_snapshot or {}).get("filter") or {})
    criteria["silent_after"] = parent.id
    calls = step == "appel"
    return await Campaign.create(
        name=f"{parent.name} — {STEP_NAMES[step]}"[:200],
        channel="appel" if calls else parent.channel,
        template_version=version,
        audience_id=parent.audience_id,
        audience_snapshot={"filter": criteria, "name": f"Sans nouvelles après « {parent.name} »"},
        sender=parent.sender,
        hotline=parent.hotline,
        expects_replies=False if calls else parent.expects_replies,
        send_window=parent.send_window,
        price_per_part=0 if calls else parent.price_per_part,
        created_by_id=parent.launched_by_id,
        parent_id=parent.id,
        step=step,
        status=S.RUNNING if calls else S.DRAFT,
        launched_at=now if calls else None,
    )


async def call_step(parent: Campaign, now: datetime) -> tuple[Campaign, CampaignRun]:
    """The journey's call campaign and its one run, made on first need (idempotent)."""
    async with in_transaction():
        # Two ticks at once: the lock on the first campaign makes the second one wait.
        await Campaign.filter(id=parent.id).select_for_update().first()
        child = await _child(parent, "appel")
        created = child is None
        if child is None:
            template_id = (parent.journey or {})["call_template_id"]
            child = await _make_child(parent, "appel", template_id, now)
            await CampaignRun.create(campaign_id=child.id, number=1, started_at=now)
        run = await CampaignRun.get(campaign_id=child.id, number=1)
    if created:
        callers = (parent.journey or {}).get("callers") or []
        if callers:
            try:
                await set_callers(child.id, callers, actor=Actor.system())
            except Invalid as exc:  # an account closed since: the others still take calls
                log.warning("journey %s: callers not all set (%s)", parent.id, exc.code)
        await audit.record(
            Actor.system(), "journey.call_step", "campaign", child.id, parent=parent.id
        )
    return child, run


async def _start_reminder(parent: Campaign, runtime: Runtime, now: datetime) -> bool:
    async with in_transaction():
        await Campaign.filter(id=parent.id).select_for_update().first()
        if await _child(parent, "relance") is not None:
            return False
        template_id = (parent.journey or {})["reminder_template_id"]
        child = await _make_child(parent, "relance", template_id, now)
    try:
        await launch(child.id, actor=Actor.system(), runtime=runtime)
    except (Invalid, Conflict, NotFound) as exc:
        log.warning("journey %s: reminder not launched (%s)", parent.id, exc.code)
        await Campaign.filter(id=child.id).update(status_reason=exc.detail[:255])
    return True


async def _add_calls(
    child: Campaign,
    run: CampaignRun,
    runtime: Runtime,
    now: datetime,
    *,
    origin: str,
    person_ids: list[int] | None = None,
) -> int:
    """Calls in the journey's call step (the silent, or the given people); how many new."""
    tasks = await create_tasks(
        child, run.id, 1, settings=runtime.settings, now=now, person_ids=person_ids, origin=origin
    )
    # Counted in the database: the tick and a callback may add calls to the run at once.
    await CampaignRun.filter(id=run.id).update(recipients=F("recipients") + tasks.created)
    return tasks.created


async def _start_calls(parent: Campaign, runtime: Runtime, now: datetime) -> int:
    if (parent.journey or {}).get("calls_started_at"):
        return 0
    child, run = await call_step(parent, now)
    created = await _add_calls(child, run, runtime, now, origin="parcours")
    journey = {**(parent.journey or {}), "calls_started_at": now.isoformat()}
    await Campaign.filter(id=parent.id).update(journey=journey)
    parent.journey = journey
    return created


async def _failed_to_calls(parent: Campaign, runtime: Runtime, now: datetime) -> int:
    """People whose invitation or reminder failed: called without waiting."""
    journey_ids = [parent.id, *await Campaign.filter(parent_id=parent.id, step="relance")
                   .values_list("id", flat=True)]  # fmt: skip
    failed = await Message.filter(
        campaign_id__in=journey_ids, status__in=list(FAILED), person_id__isnull=False
    ).values_list("person_id", flat=True)
    if not failed:
        return 0
    child, run = await call_step(parent, now)
    known = set(await CallTask.filter(run_id=run.id).values_list("person_id", flat=True))
    todo = sorted({int(str(p)) for p in failed} - {p for p in known if p is not None})
    if not todo:
        return 0
    # Not if they answered another way (a reply, an opt-out) since.
    signed = await _signed(parent, todo)
    todo = [p for p in todo if p not in signed]
    if not todo:
        return 0
    return await _add_calls(child, run, runtime, now, origin="echec_envoi", person_ids=todo)


async def _signed(parent: Campaign, person_ids: list[int]) -> set[int]:
    """Among these people, those who replied or opted out since the journey began."""
    if not person_ids or parent.launched_at is None:
        return set()
    replied = await Reply.filter(
        person_id__in=person_ids, received_at__gte=parent.launched_at
    ).values_list("person_id", flat=True)
    people = await Person.filter(id__in=person_ids).values_list("id", "mobile", "email")
    addresses = {a: pid for pid, m, e in people for a in (m, e) if a}
    opted = await OptOut.filter(address__in=list(addresses), active=True).values_list(
        "address", flat=True
    )
    return {int(str(p)) for p in replied if p is not None} | {addresses[a] for a in opted}


async def _stop_for_the_signed(parent: Campaign, now: datetime) -> int:
    child = await _child(parent, "appel")
    if child is None:
        return 0
    waiting = await CallTask.filter(
        campaign_id=child.id, status__in=list(OPEN_STATUSES), person_id__isnull=False
    ).values_list("person_id", flat=True)
    stop = await _signed(parent, [int(str(p)) for p in waiting])
    if not stop:
        return 0
    return await CallTask.filter(
        campaign_id=child.id, status__in=list(OPEN_STATUSES), person_id__in=sorted(stop)
    ).update(status=CallStatus.CANCELLED, completed_at=now, updated_at=now)


async def advance_journeys(runtime: Runtime, now: datetime) -> dict[str, int]:
    """One scheduler tick over the journeys under way; safe to run from several workers."""
    counts = {"reminders": 0, "call_steps": 0, "calls_after_failure": 0, "stopped": 0}
    parents = await Campaign.filter(
        journey__isnull=False,
        parent_id__isnull=True,
        launched_at__gte=now - ACTIVE_FOR,
        status__in=[S.RUNNING, S.PAUSED, S.COMPLETED, S.SCHEDULED],
    ).order_by("id")
    for parent in parents:
        times = step_times(parent)
        if "relance" in times and times["relance"] <= now:
            counts["reminders"] += await _start_reminder(parent, runtime, now)
        if "appel" in times:
            if times["appel"] <= now:
                counts["call_steps"] += await _start_calls(parent, runtime, now)
            counts["calls_after_failure"] += await _failed_to_calls(parent, runtime, now)
            counts["stopped"] += await _stop_for_the_signed(parent, now)
    return counts


async def journey_steps(campaign: Campaign) -> list[dict[str, Any]]:
    """Each step's counts, for the campaign page and the funnel (empty without a journey)."""
    if not campaign.journey or campaign.parent_id is not None:
        return []
    times = step_times(campaign)  # empty until the first campaign is launched
    steps = [await _message_step(campaign, "invitation", campaign.launched_at)]
    if campaign.journey.get("reminder_days"):
        reminder = await _child(campaign, "relance")
        steps.append(await _message_step(reminder, "relance", times.get("relance")))
    if campaign.journey.get("call_days"):
        calls = await _child(campaign, "appel")
        steps.append(await _call_step_counts(calls, times.get("appel")))
    return steps


async def _message_step(
    campaign: Campaign | None, step: str, at: datetime | None
) -> dict[str, Any]:
    row: dict[str, Any] = {"step": step, "campaign_id": campaign.id if campaign else None,
                           "starts_at": at.isoformat() if at else None}  # fmt: skip
    if campaign is None:
        return {**row, "recipients": 0, "delivered": 0, "failed": 0, "replied": 0}
    messages = Message.filter(campaign_id=campaign.id)
    sent = await messages.exclude(
        status__in=[MessageStatus.SKIPPED, MessageStatus.CANCELLED]
    ).count()
    delivered = await messages.filter(status=MessageStatus.DELIVERED).count()
    failed = await messages.filter(status__in=list(FAILED)).count()
    replied = len(
        set(await Reply.filter(campaign_id=campaign.id).values_list("person_id", flat=True))
        - {None}
    )
    return {**row, "recipients": sent, "delivered": delivered, "failed": failed, "replied": replied}


async def _call_step_counts(campaign: Campaign | None, at: datetime | None) -> dict[str, Any]:
    row: dict[str, Any] = {"step": "appel", "campaign_id": campaign.id if campaign else None,
                           "starts_at": at.isoformat() if at else None}  # fmt: skip
    if campaign is None:
        return {**row, "tasks": 0, "reached": 0, "injoignables": 0, "open": 0, "cancelled": 0}
    counts = await call_counts(campaign.id)
    reached = CallTask.filter(campaign_id=campaign.id, status=CallStatus.DONE, outcome__in=REACHED)
    return {
        **row,
        "tasks": sum(counts.values()),
        "reached": await reached.count(),
        "injoignables": counts[CallStatus.INJOIGNABLE.value],
        "open": sum(counts[s.value] for s in (*OPEN_STATUSES, CallStatus.CLAIMED)),
        "cancelled": counts[CallStatus.CANCELLED.value],
    }

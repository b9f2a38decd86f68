"""A callback reply becomes a call: "rappelez-moi après 14h" is a call due at 14:00.

When the person is waiting for a call in a running call campaign, that call moves to
the time they asked for; when the reply answers a journey that has a call step, a call
task is made there. Otherwise the reply goes to the `rappel` queue as before. The call
sheet says a callback was asked by SMS, never what the reply said: callers (volunteers
among them) do not read replies.
"""

from __future__ import annotations

from datetime import datetime

from campaigns.calls.callers import running_call_campaigns
from campaigns.calls.generation import OPEN_STATUSES, create_tasks
from campaigns.campaign.journeys import call_step
from campaigns.core import audit
from campaigns.core.audit import Actor
from campaigns.core.clock import as_utc
from campaigns.core.runtime import Runtime
from campaigns.models import CallTask, Campaign, Reply
from campaigns.rules.callback_time import requested_callback
from campaigns.rules.queues import opening_window


async def callback_as_call(reply: Reply, runtime: Runtime) -> CallTask | None:
    """The call task that now carries this callback request, or None (queue it instead)."""
    if reply.person_id is None:
        return None
    now = runtime.clock()
    window = opening_window(runtime.settings)
    asked = requested_callback(reply.text or "", now, window)
    at = as_utc(asked or window.next_open(now))
    note = {
        "at": now.isoformat(),
        "by": "réponse SMS",
        "outcome": "",
        "text": "Rappel demandé par SMS"
        + (f", pour le {asked.astimezone(window.tz):%d/%m à %H:%M}." if asked else "."),
    }
    task = await _waiting_call(reply.person_id)
    if task is None:
        task = await _journey_call(reply, at, runtime)
        if task is None:
            return None
    await CallTask.filter(id=task.id).update(
        due_at=at, notes=[*(task.notes or []), note], updated_at=now
    )
    await audit.record(
        Actor.system(), "call.callback", "call_task", task.id, reply_id=reply.id, asked=bool(asked)
    )
    return await CallTask.get(id=task.id)


async def _waiting_call(person_id: int) -> CallTask | None:
    running = await running_call_campaigns()
    if not running:
        return None
    return (
        await CallTask.filter(
            person_id=person_id, status__in=list(OPEN_STATUSES), campaign_id__in=running
        )
        .order_by("due_at", "id")
        .first()
    )


async def _journey_call(reply: Reply, at: datetime, runtime: Runtime) -> CallTask | None:
    campaign = await Campaign.get_or_none(id=reply.campaign_id) if reply.campaign_id else None
    if campaign is not None and campaign.parent_id is not None:
        campaign = await Campaign.get_or_none(id=campaign.parent_id)
    if campaign is None or not (campaign.journey or {}).get("call_template_id"):
        return None
    now = runtime.clock()
    child, run = await call_step(campaign, now)
    await create_tasks(
        child, run.id, 1, settings=runtime.settings, now=now, due_at=at,
        person_ids=[reply.person_id or 0], origin="rappel",
    )  # fmt: skip
    task = await CallTask.get_or_none(run_id=run.id, person_id=reply.person_id)
    # Already called in this step (reached, or given up): a caseworker reads it instead.
    return task if task is not None and task.status in OPEN_STATUSES else None

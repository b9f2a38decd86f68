"""The launch of a campaign run: one Message per person, rendered or skipped with a reason.

Launch is where every decision about a recipient is taken: the template is checked
against the sample person, the audience is snapshotted, and one Message row per
person is written with its rendered text, or marked `skipped` with a reason. The
dispatch workers only send what launch wrote.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from campaigns.calls.generation import cancel_open_tasks, create_tasks
from campaigns.campaign.launch_batches import (
    PERSON_COLUMNS,
    Batch,
    MessageWriter,
    address_key,
    audience_batches,
    reads_apart,
    usable_address,
)
from campaigns.campaign.lifecycle import (
    TRANSITIONS,
    S,
    campaign_warnings,
    check_transition,
    check_version,
    enqueue_dispatch,
    finish_run,
    get_campaign,
    money,
    schedule,
)
from campaigns.core import audit
from campaigns.core.audit import Actor
from campaigns.core.errors import Conflict, Invalid, NotFound
from campaigns.core.runtime import Runtime
from campaigns.core.settings import Settings
from campaigns.messages.renderer import CampaignRenderer
from campaigns.messages.rendering import TemplateError
from campaigns.models import (
    Audience,
    Campaign,
    CampaignRun,
    Message,
    MessageStatus,
    Person,
    TemplateVersion,
)

log = logging.getLogger(__name__)

# Why a previous run's unsent message was dropped when the next occurrence started.
SUPERSEDED = "remplacé par l'envoi suivant"


@dataclass
class Plan:
    """What a launch decides: who gets what, who is skipped and why, what it costs."""

    audience_count: int = 0
    queued: int = 0
    parts: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    encodings: Counter[str] = field(default_factory=Counter)

    def as_dict(self, price_per_part: Decimal) -> dict[str, Any]:
        return {
            "audience_count": self.audience_count,
            "recipients": self.queued,
            "skipped": sum(self.skipped.values()),
            "skipped_by_reason": dict(sorted(self.skipped.items())),
            "parts": self.parts,
            "encodings": dict(self.encodings),
            "cost_estimate": money(Decimal(self.parts) * price_per_part),
        }


def _today(runtime: Runtime, now: datetime) -> date:
    return now.astimezone(runtime.settings.tz).date()


# The columns launch decides for each message, in the order the planner gives them.
_DECIDED = (
    "run_id", "campaign_id", "person_id", "channel", "address", "subject", "text", "html",
    "encoding", "segments", "status", "skip_reason",
)  # fmt: skip
_QUEUED, _SKIPPED = MessageStatus.QUEUED.value, MessageStatus.SKIPPED.value


class _Planner:
    """Decides each person's message, batch after batch, in the audience's id order.

    The decisions, in order: no usable address (landline only, or nothing), opted out,
    an address already given a message in this run (duplicate), a template that does not
    render for this person; otherwise queued with its text. An address is taken by the
    first person holding it who is not opted out, rendered or not.
    """

    def __init__(
        self,
        campaign: Campaign,
        version: TemplateVersion,
        settings: Settings,
        *,
        run_id: int,
        plan: Plan,
        row: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None,
    ) -> None:
        self.channel = campaign.channel
        self.campaign_id = campaign.id
        self.run_id = run_id
        self.renderer = CampaignRenderer(campaign, version, settings, columns=PERSON_COLUMNS)
        self.plan = plan
        self.row = row
        self.seen: set[str] = set()

    def decide(self, batch: Batch) -> list[tuple[Any, ...]]:
        """The batch's messages as database rows (none when only counting)."""
        channel, seen, opted_out, plan = self.channel, self.seen, batch.opted_out, self.plan
        skipped, encodings = plan.skipped, plan.encodings
        sms = self.renderer.sms if channel == "sms" else None
        head = (self.run_id, self.campaign_id)
        make = self.row
        rows: list[tuple[Any, ...]] = []
        plan.audience_count += len(batch.rows)
        for person in batch.rows:
            if sms is not None:  # usable_address, inline: this loop runs a million times
                address = key = person[4] or None
                reason = None if address else "landline_only" if person[5] else "no_address"
            else:
                address, reason = usable_address(channel, person)
                key = address_key(channel, address) if address is not None else None
            subject = html = encoding = None
            text, segments = "", 0
            if key is not None:
                if key in opted_out:
                    reason = "opted_out"
                else:
                    if key in seen:
                        reason = "duplicate_address"
                    else:
                        try:
                            if sms is not None:
                                text, encoding, segments = sms(person)
                            else:
                                subject, text, html = self.renderer.email(person)
                                segments = 1
                        except TemplateError as exc:
                            # Data the sample could not foresee: this person is skipped.
                            log.warning(
                                "campaign %s: person %s not rendered (%s)",
                                self.campaign_id, person[0], exc.code,
                            )  # fmt: skip
                            reason = "render_error"
                    seen.add(key)
            if reason:
                skipped[reason] += 1
                status = _SKIPPED
            else:
                plan.queued += 1
                plan.parts += segments
                encodings[encoding or channel] += 1
                status = _QUEUED
            if make is not None:
                rows.append(
                    make(
                        (*head, person[0], channel, address, subject, text, html, encoding,
                         segments, status, reason)
                    )
                )  # fmt: skip
        return rows


def _audience(
    campaign: Campaign, criteria: dict[str, Any], today: date
) -> tuple[AsyncIterator[Batch], bool]:
    """The audience's batches, and whether they are read apart from the launch's writing.

    Called before the launch's transaction begins: on PostgreSQL the audience is then
    read on a connection of its own while the transaction's connection writes.
    """
    db: BaseDBAsyncClient = Person._meta.db
    return audience_batches(criteria, today, campaign.channel, db=db), reads_apart(db)


async def _materialise(
    campaign: Campaign,
    version: TemplateVersion,
    settings: Settings,
    batches: tuple[AsyncIterator[Batch], bool],
    *,
    run_id: int,
    now: datetime,
    write: bool,
) -> Plan:
    """Stream the audience through the planner; write the messages when `write`, else count."""
    plan = Plan()
    writer = MessageWriter(_DECIDED, now) if write else None
    planner = _Planner(
        campaign,
        version,
        settings,
        run_id=run_id,
        plan=plan,
        row=writer.row_builder() if writer else None,
    )
    source, apart = batches
    async with contextlib.aclosing(source):  # type: ignore[type-var]
        if writer is None:
            async for batch in source:
                planner.decide(batch)
            return plan
        async with writer.stream(apart=apart) as put:
            async for batch in source:
                await put(planner.decide(batch))
    return plan


def _snapshot(
    campaign: Campaign,
    audience: Audience | None,
    criteria: dict[str, Any],
    count: int,
    now: datetime,
) -> dict[str, Any]:
    previous = campaign.audience_snapshot or {}
    return {
        "audience_id": campaign.audience_id,
        "name": previous.get("name") or (audience.name if audience else None),
        "filter": criteria,
        "count": count,
        "taken_at": now.isoformat(),
    }


async def _criteria(campaign: Campaign) -> tuple[Audience | None, dict[str, Any]]:
    """The filter frozen at the first launch, or the saved audience's current one."""
    snapshot = campaign.audience_snapshot or {}
    if snapshot.get("filter") is not None:
        return None, snapshot["filter"]
    audience = await Audience.get_or_none(id=campaign.audience_id)
    if audience is None:
        raise Conflict("L'audience de cette campagne n'existe plus.", code="audience_missing")
    return audience, audience.criteria


async def preview_launch(campaign_id: int, runtime: Runtime) -> dict[str, Any]:
    """What launch would do now (recipients, skipped by reason, parts, cost), writing nothing."""
    campaign = await get_campaign(campaign_id)
    check_transition(campaign, "launch")
    version = await check_version(campaign)
    now = runtime.clock()
    _, criteria = await _criteria(campaign)
    batches = _audience(campaign, criteria, _today(runtime, now))
    plan = await _materialise(
        campaign, version, runtime.settings, batches, run_id=0, now=now, write=False
    )
    data = plan.as_dict(campaign.price_per_part)
    later = campaign.scheduled_at is not None and campaign.scheduled_at > now
    data["status_after"] = S.SCHEDULED.value if later else S.RUNNING.value
    data["warnings"] = campaign_warnings(campaign, runtime.settings) + _plan_warnings(plan)
    return data


def _plan_warnings(plan: Plan) -> list[dict[str, str]]:
    if plan.queued:
        return []
    return [{"code": "no_recipients", "detail": "Aucun destinataire ne recevra ce message."}]


async def launch(campaign_id: int, *, actor: Actor, runtime: Runtime) -> dict[str, Any]:
    """Start the campaign now, or schedule it when its date is in the future.

    Returns the campaign's new status, the launch counts (when a run started) and the
    warnings. Invalid (422) for a template that does not render; Conflict (409) when the
    campaign's status does not allow it.
    """
    campaign = await get_campaign(campaign_id)
    check_transition(campaign, "launch")
    await check_version(campaign)
    now = runtime.clock()
    warnings = campaign_warnings(campaign, runtime.settings)
    if campaign.status == S.DRAFT and campaign.scheduled_at and campaign.scheduled_at > now:
        await schedule(
            campaign,
            actor=actor,
            now=now,
            at=campaign.scheduled_at,
            recurrence_days=campaign.recurrence_days,
        )
        return {"status": campaign.status.value, "run": None, "warnings": warnings}
    following = now + timedelta(days=campaign.recurrence_days) if campaign.recurrence_days else None
    result = await _start_run(campaign, runtime, actor, now, first=True, following=following)
    if result is None:
        await campaign.refresh_from_db()
        check_transition(campaign, "launch")
        raise Conflict("La campagne vient d'être lancée par ailleurs.", code="concurrent_change")
    return {**result, "warnings": warnings + result["warnings"]}


def _next_occurrence(due: datetime, every_days: int | None, now: datetime) -> datetime | None:
    """The first occurrence after now: after downtime one late run, never a burst of them."""
    if not every_days:
        return None
    step = timedelta(days=every_days)
    following = due + step
    if following <= now:
        following += step * ((now - following) // step + 1)
    return following


async def _start_run(
    campaign: Campaign,
    runtime: Runtime,
    actor: Actor,
    now: datetime,
    *,
    first: bool,
    following: datetime | None,
) -> dict[str, Any] | None:
    """Claim the campaign, create a run and write its messages in one transaction.

    `first`: a launch from draft or scheduled; otherwise the next run of a recurring
    campaign, claimed by moving `next_run_at` on to `following`. None when another
    process got there first. What earlier runs have not sent yet (queued, or claimed
    but not handed to the provider) is cancelled in the same transaction: nobody gets
    two occurrences at once.
    """
    version = await check_version(campaign)
    audience, criteria = await _criteria(campaign)
    calls = campaign.channel == "appel"
    batches = None if calls else _audience(campaign, criteria, _today(runtime, now))
    previous_status = campaign.status
    try:
        async with in_transaction():
            if first:
                claim = Campaign.filter(id=campaign.id, status__in=list(TRANSITIONS["launch"][0]))
            else:
                claim = Campaign.filter(
                    id=campaign.id,
                    status__in=[S.SCHEDULED, S.RUNNING],
                    next_run_at=campaign.next_run_at,
                )
            changes: dict[str, Any] = {"status": S.RUNNING, "next_run_at": following}
            if first or campaign.launched_at is None:
                changes.update(launched_at=now, launched_by_id=actor.id)
            if not await claim.update(**changes):
                return None
            number = await CampaignRun.filter(campaign_id=campaign.id).count() + 1
            run = await CampaignRun.create(campaign_id=campaign.id, number=number, started_at=now)
            if batches is None:
                superseded = await cancel_open_tasks(campaign.id, keep_run=run.id, now=now)
                campaign.audience_snapshot = {
                    **(campaign.audience_snapshot or {}),
                    "filter": criteria,
                }
                plan = await _call_cycle(campaign, runtime, run.id, number, now)
            else:
                superseded = await _supersede_messages(campaign.id, now)
                plan = await _materialise(
                    campaign, version, runtime.settings, batches, run_id=run.id, now=now, write=True
                )
            run.recipients, run.skipped = plan.queued, sum(plan.skipped.values())
            await run.save(update_fields=["recipients", "skipped"])
            snapshot = _snapshot(campaign, audience, criteria, plan.audience_count, now)
            await Campaign.filter(id=campaign.id).update(audience_snapshot=snapshot)
    except IntegrityError:
        # Two schedulers creating the same run number: the other one's run stands.
        return None
    for name, value in changes.items():
        setattr(campaign, name, value)
    campaign.audience_snapshot = snapshot
    detail = plan.as_dict(campaign.price_per_part)
    await audit.record(
        actor,
        "campaign.launch" if first else "campaign.run",
        "campaign",
        campaign.id,
        run=number,
        recipients=plan.queued,
        skipped=detail["skipped_by_reason"],
        parts=plan.parts,
        previous_status=previous_status.value,
        superseded=superseded,
    )
    log.info(
        "campaign %s run %s: %s queued, %s skipped", campaign.id, number, plan.queued, run.skipped
    )
    if calls:
        pass  # calls are taken by callers, and the run stays open until the next cycle
    elif plan.queued:
        await enqueue_dispatch(runtime, run.id)
    else:
        await finish_run(run.id, now)
        await campaign.refresh_from_db()
    return {
        "status": campaign.status.value,
        "run": {"id": run.id, "number": number},
        **detail,
        "warnings": _plan_warnings(plan),
    }


async def _supersede_messages(campaign_id: int, now: datetime) -> int:
    # A lane still working an earlier run sends only what it marked handed over.
    return (
        await Message.filter(campaign_id=campaign_id)
        .filter(
            Q(status=MessageStatus.QUEUED) | Q(status=MessageStatus.SENDING, handed_at__isnull=True)
        )
        .update(status=MessageStatus.CANCELLED, error=SUPERSEDED, settled_at=now)
    )


async def _call_cycle(
    campaign: Campaign, runtime: Runtime, run_id: int, number: int, now: datetime
) -> Plan:
    """A call campaign's cycle: one task per reachable person instead of messages."""
    tasks = await create_tasks(campaign, run_id, number, settings=runtime.settings, now=now)
    plan = Plan(audience_count=tasks.eligible + tasks.no_phone + tasks.opted_out)
    plan.queued = tasks.created
    if tasks.no_phone:
        plan.skipped["no_address"] = tasks.no_phone
    if tasks.opted_out:
        plan.skipped["opted_out"] = tasks.opted_out
    return plan


async def start_due_runs(runtime: Runtime, now: datetime) -> int:
    """Launch scheduled campaigns whose time has come and the next run of recurring ones.

    Safe to call from several schedulers at once: each run is claimed (status or
    `next_run_at` compare-and-set) in the same transaction that writes it. Returns the
    number of runs started.
    """
    due = await Campaign.filter(status__in=[S.SCHEDULED, S.RUNNING], next_run_at__lte=now).order_by(
        "next_run_at", "id"
    )
    started = 0
    for campaign in due:
        assert campaign.next_run_at is not None  # selected by next_run_at__lte
        # Repeat from the scheduled time (09:00 every 3 days), not from when the tick ran.
        following = _next_occurrence(campaign.next_run_at, campaign.recurrence_days, now)
        first = not await CampaignRun.exists(campaign_id=campaign.id)
        try:
            result = await _start_run(
                campaign, runtime, Actor.system(), now, first=first, following=following
            )
        except (Invalid, Conflict, NotFound) as exc:
            # Stop retrying every tick and say why; a coordinator can still launch it by hand.
            log.warning("campaign %s not started: %s", campaign.id, exc.code)
            await Campaign.filter(id=campaign.id, next_run_at=campaign.next_run_at).update(
                next_run_at=None, status_reason=exc.detail[:255]
            )
            continue
        if result is not None:
            started += 1
    return started


__all__ = ["Plan", "launch", "preview_launch", "start_due_runs"]

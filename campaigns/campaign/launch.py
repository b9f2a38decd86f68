"""The launch of a campaign run: one Message per person, rendered or skipped with a reason.

Launch is where every decision about a recipient is taken: the template is checked
against the sample person, the audience is snapshotted, and one Message row per
person is written with its rendered text, or marked `skipped` with a reason. The
dispatch workers only send what launch wrote.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

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
    OptOut,
    Person,
    TemplateVersion,
)

log = logging.getLogger(__name__)

BATCH = 1000

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


_PERSON_FIELDS = ("id", "civility", "first_name", "last_name", "mobile", "landline", "email")


def _today(runtime: Runtime, now: datetime) -> date:
    return now.astimezone(runtime.settings.tz).date()


async def _audience_ids(criteria: dict[str, Any], today: date) -> list[int]:
    # Imported here: the audience module belongs to another part of the service.
    from campaigns.registry.audiences import audience_query

    ids = await audience_query(criteria, today).values_list("id", flat=True)
    return sorted(set(ids))  # a query joining memberships may repeat a person


def _address_key(channel: str, address: str) -> str:
    # E-mail addresses are compared without case (nobody has two boxes differing by case).
    return address.lower() if channel == "email" else address


def _address_of(channel: str, row: dict[str, Any]) -> tuple[str | None, str | None]:
    """(address, skip reason): the usable address, or why there is none."""
    if channel == "sms":
        if row["mobile"]:
            return row["mobile"], None
        return None, "landline_only" if row["landline"] else "no_address"
    email = (row["email"] or "").strip()
    return (email, None) if email else (None, "no_address")


async def _plan_batch(
    rows: Sequence[dict[str, Any]],
    *,
    channel: str,
    renderer: CampaignRenderer,
    run_id: int,
    campaign_id: int,
    seen: set[str],
    plan: Plan,
) -> list[dict[str, Any]]:
    """Decide each person's message (as database values); one query for the batch's opt-outs."""
    addresses = {row["id"]: _address_of(channel, row) for row in rows}
    candidates = {a for a, _ in addresses.values() if a}
    candidates |= {_address_key(channel, a) for a in candidates}
    opted_out = {
        _address_key(channel, a)
        for a in await OptOut.filter(address__in=list(candidates), active=True).values_list(
            "address", flat=True
        )
    }
    messages: list[dict[str, Any]] = []
    for row in rows:
        address, reason = addresses[row["id"]]
        key = _address_key(channel, address) if address else None
        content: dict[str, Any] = {}
        if key is not None and key in opted_out:
            reason = "opted_out"
        elif key is not None and key in seen:
            reason = "duplicate_address"
        elif key is not None:
            try:
                content = renderer.render(row)
            except TemplateError as exc:
                # Data the sample could not foresee; the person is skipped, the rest go out.
                log.warning(
                    "campaign %s: person %s not rendered (%s)", campaign_id, row["id"], exc.code
                )
                reason = "render_error"
        if key is not None and reason != "opted_out":
            seen.add(key)
        if reason:
            plan.skipped[reason] += 1
            status = MessageStatus.SKIPPED
        else:
            plan.queued += 1
            plan.parts += content["segments"]
            plan.encodings[content.get("encoding") or channel] += 1
            status = MessageStatus.QUEUED
        messages.append(
            {
                "run_id": run_id,
                "campaign_id": campaign_id,
                "person_id": row["id"],
                "channel": channel,
                "address": address,
                "subject": content.get("subject"),
                "text": content.get("text", ""),
                "html": content.get("html"),
                "encoding": content.get("encoding"),
                "segments": content.get("segments", 0),
                "status": status.value,
                "skip_reason": reason,
            }
        )
    return messages


class _MessageWriter:
    """Inserts planned messages with tortoise's own INSERT statement, but no Model per row.

    `bulk_create` builds a Model and converts every field of every row: at 50,000
    recipients that was most of the launch. The rows here hold database values already;
    columns they do not name get the field's default, so a column added later still works.
    """

    def __init__(self, now: datetime) -> None:
        db = Message._meta.db
        executor = db.executor_class(model=Message, db=db)
        self.sql: str = executor.insert_query
        self.columns: list[str] = list(executor.regular_columns)
        fields_map = Message._meta.fields_map
        self.defaults: dict[str, Any] = {}
        for name in self.columns:
            f = fields_map[name]
            if getattr(f, "auto_now_add", False) or getattr(f, "auto_now", False):
                value: Any = now
            else:
                value = f.default() if callable(f.default) else f.default
            # None stays None: a required column (channel...) is always in the rows.
            self.defaults[name] = None if value is None else f.to_db_value(value, Message)

    async def write(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        defaults, columns = self.defaults, self.columns
        values = [[row.get(c, defaults[c]) for c in columns] for row in rows]
        # Looked up per call: inside in_transaction() this is the transaction's connection.
        await Message._meta.db.execute_many(self.sql, values)


async def _materialise(
    campaign: Campaign,
    version: TemplateVersion,
    settings: Settings,
    person_ids: list[int],
    *,
    run_id: int,
    now: datetime,
    write: bool,
) -> Plan:
    """Walk the audience in batches; write the messages when `write`, else only count them."""
    plan = Plan(audience_count=len(person_ids))
    renderer = CampaignRenderer(campaign, version, settings)
    writer = _MessageWriter(now) if write else None
    seen: set[str] = set()
    for start in range(0, len(person_ids), BATCH):
        chunk = person_ids[start : start + BATCH]
        rows = await Person.filter(id__in=chunk).order_by("id").values(*_PERSON_FIELDS)
        messages = await _plan_batch(
            rows,
            channel=campaign.channel,
            renderer=renderer,
            run_id=run_id,
            campaign_id=campaign.id,
            seen=seen,
            plan=plan,
        )
        if writer is not None:
            await writer.write(messages)
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
    person_ids = await _audience_ids(criteria, _today(runtime, now))
    plan = await _materialise(
        campaign, version, runtime.settings, person_ids, run_id=0, now=now, write=False
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
    person_ids = await _audience_ids(criteria, _today(runtime, now))
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
            # A lane still working an earlier run sends only what it marked handed over.
            superseded = (
                await Message.filter(campaign_id=campaign.id)
                .filter(
                    Q(status=MessageStatus.QUEUED)
                    | Q(status=MessageStatus.SENDING, handed_at__isnull=True)
                )
                .update(status=MessageStatus.CANCELLED, error=SUPERSEDED, settled_at=now)
            )
            number = await CampaignRun.filter(campaign_id=campaign.id).count() + 1
            run = await CampaignRun.create(campaign_id=campaign.id, number=number)
            plan = await _materialise(
                campaign, version, runtime.settings, person_ids, run_id=run.id, now=now, write=True
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
    if plan.queued:
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

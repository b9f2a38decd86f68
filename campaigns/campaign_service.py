"""The life of a campaign: create, schedule, launch, pause, resume, cancel, and its statistics.

Launch is where every decision about a recipient is taken: the template is checked
against the sample person, the audience is snapshotted, and one Message row per
person is written with its rendered text, or marked `skipped` with a reason. The
dispatch workers only send what launch wrote.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.functions import Count, Sum
from tortoise.transactions import in_transaction

from campaigns import audit
from campaigns.audit import Actor
from campaigns.errors import Conflict, Invalid, NotFound
from campaigns.models import (
    Audience,
    Campaign,
    CampaignRun,
    CampaignStatus,
    Message,
    MessageStatus,
    OptOut,
    Person,
    Staff,
    Template,
    TemplateVersion,
)
from campaigns.optouts import unsubscribe_url
from campaigns.rendering import (
    CampaignVars,
    TemplateError,
    TemplateVars,
    check_template,
    render_email,
    render_sms_text,
    sample_person,
)
from campaigns.runtime import Runtime
from campaigns.settings import Settings
from campaigns.sms_encoding import SmsAnalysis, analyse
from campaigns.templates_store import ccas_vars, person_vars, template_error

log = logging.getLogger(__name__)

S = CampaignStatus
BATCH = 1000
# Only for development without CAMPAIGNS_SECRET_KEY: links still work, but are guessable.
MAX_RECURRENCE_DAYS = 366

STATUS_LABELS = {
    S.DRAFT: "brouillon",
    S.SCHEDULED: "programmée",
    S.RUNNING: "en cours",
    S.PAUSED: "en pause",
    S.COMPLETED: "terminée",
    S.CANCELLED: "annulée",
}

# action -> (statuses it may start from, French verb for the refusal)
TRANSITIONS: dict[str, tuple[frozenset[CampaignStatus], str]] = {
    "schedule": (frozenset({S.DRAFT, S.SCHEDULED}), "programmer"),
    "launch": (frozenset({S.DRAFT, S.SCHEDULED}), "lancer"),
    "pause": (frozenset({S.RUNNING}), "mettre en pause"),
    "resume": (frozenset({S.PAUSED}), "reprendre"),
    "cancel": (frozenset({S.DRAFT, S.SCHEDULED, S.RUNNING, S.PAUSED}), "annuler"),
}

SKIP_REASONS = ("opted_out", "no_address", "landline_only", "duplicate_address", "render_error")
# Messages that have left for the provider, whatever happened to them next.
PENDING = (MessageStatus.QUEUED, MessageStatus.SENDING)
# Why a previous run's unsent message was dropped when the next occurrence started.
SUPERSEDED = "remplacé par l'envoi suivant"

_LETTER = re.compile(r"[A-Za-z]")
_SENDER = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9 .\-]{0,10}|\+?\d{6,15})$")


# --- transitions --------------------------------------------------------------------------


def check_transition(campaign: Campaign, action: str) -> None:
    """Conflict (409) naming the current status when `action` is not allowed from it."""
    allowed, verb = TRANSITIONS[action]
    if campaign.status not in allowed:
        label = STATUS_LABELS[CampaignStatus(campaign.status)]
        raise Conflict(
            f"Impossible de {verb} cette campagne : elle est {label} "
            f"(statut « {campaign.status} »).",
            code="invalid_transition",
        )


async def _claim(campaign: Campaign, action: str, **changes: Any) -> None:
    """Move the campaign only if nobody moved it meanwhile (a compare-and-set on the status)."""
    check_transition(campaign, action)
    updated = await Campaign.filter(id=campaign.id, status=campaign.status).update(**changes)
    if not updated:
        await campaign.refresh_from_db()
        check_transition(campaign, action)  # names the status someone else just set
        raise Conflict("La campagne vient d'être modifiée ; réessayez.", code="concurrent_change")
    for name, value in changes.items():
        setattr(campaign, name, value)


async def get_campaign(campaign_id: int) -> Campaign:
    campaign = await Campaign.get_or_none(id=campaign_id)
    if campaign is None:
        raise NotFound(f"Campagne {campaign_id} introuvable")
    return campaign


# --- create and schedule ------------------------------------------------------------------


def _aware(moment: datetime, settings: Settings) -> datetime:
    # A date typed without an offset is the CCAS's local time, not UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=settings.tz)


def _check_schedule(
    scheduled_at: datetime | None, recurrence_days: int | None, now: datetime
) -> None:
    if scheduled_at is not None and scheduled_at <= now:
        raise Invalid("La date d'envoi programmée est déjà passée.", code="scheduled_in_past")
    if recurrence_days is not None and not 1 <= recurrence_days <= MAX_RECURRENCE_DAYS:
        raise Invalid(
            f"La récurrence doit être comprise entre 1 et {MAX_RECURRENCE_DAYS} jours.",
            code="bad_recurrence",
        )


def _check_sender(sender: str | None) -> str | None:
    if sender is None or not sender.strip():
        return None
    sender = sender.strip()
    if not _SENDER.match(sender):
        raise Invalid(
            "Expéditeur invalide : 11 caractères alphanumériques au plus, ou un numéro.",
            code="bad_sender",
        )
    return sender


async def create_campaign(
    *,
    name: str,
    channel: str,
    template_id: int,
    audience_id: int,
    actor: Actor,
    settings: Settings,
    now: datetime,
    sender: str | None = None,
    scheduled_at: datetime | None = None,
    recurrence_days: int | None = None,
    expects_replies: bool = True,
    hotline: str | None = None,
) -> Campaign:
    """A draft campaign on the template's current version; launch() sends or schedules it."""
    name = " ".join(name.split())
    if not name:
        raise Invalid("La campagne doit avoir un nom.", code="missing_name")
    template = await Template.get_or_none(id=template_id)
    if template is None:
        raise NotFound(f"Modèle {template_id} introuvable", code="template_not_found")
    if template.channel != channel:
        raise Invalid(
            f"Le modèle est prévu pour le canal « {template.channel} », pas « {channel} ».",
            code="channel_mismatch",
        )
    version = await TemplateVersion.get(template=template, version=template.current_version)
    if not await Audience.exists(id=audience_id):
        raise NotFound(f"Audience {audience_id} introuvable", code="audience_not_found")
    if scheduled_at is not None:
        scheduled_at = _aware(scheduled_at, settings)
    _check_schedule(scheduled_at, recurrence_days, now)
    campaign = await Campaign.create(
        name=name[:200],
        channel=channel,
        template_version=version,
        audience_id=audience_id,
        sender=_check_sender(sender) if channel == "sms" else None,
        hotline=hotline,
        expects_replies=expects_replies,
        scheduled_at=scheduled_at,
        recurrence_days=recurrence_days,
        price_per_part=settings.sms_price_per_part if channel == "sms" else Decimal(0),
        created_by_id=actor.id,
    )
    await audit.record(actor, "campaign.create", "campaign", campaign.id, channel=channel)
    return campaign


async def schedule(
    campaign: Campaign,
    *,
    actor: Actor,
    now: datetime,
    at: datetime | None = None,
    recurrence_days: int | None = None,
) -> Campaign:
    """Set when the campaign starts (`at`) and/or how often it repeats; it becomes `scheduled`.

    With only a recurrence, the first run is due at once (the next scheduler tick).
    """
    if at is None and recurrence_days is None:
        raise Invalid("Indiquez une date d'envoi ou une récurrence.", code="missing_schedule")
    _check_schedule(at, recurrence_days, now)
    await _check_version(campaign)
    changes: dict[str, Any] = {"status": S.SCHEDULED, "next_run_at": at or now}
    if at is not None:
        changes["scheduled_at"] = at
    if recurrence_days is not None:
        changes["recurrence_days"] = recurrence_days
    await _claim(campaign, "schedule", **changes)
    await audit.record(
        actor, "campaign.schedule", "campaign", campaign.id, recurrence_days=recurrence_days
    )
    return campaign


async def _check_version(campaign: Campaign) -> TemplateVersion:
    """Render the template for the sample person: an undefined variable stops here, not at send."""
    version = await TemplateVersion.get(id=campaign.template_version_id)  # type: ignore[attr-defined]
    subject = version.subject if campaign.channel == "email" else None
    html = version.body_html if campaign.channel == "email" else None
    try:
        check_template(version.body, subject, body_html=html)
    except TemplateError as exc:
        raise template_error(exc) from None
    return version


# --- warnings -----------------------------------------------------------------------------


def sender_of(campaign: Campaign, settings: Settings) -> str:
    return campaign.sender or settings.sms_sender


def campaign_warnings(campaign: Campaign, settings: Settings) -> list[dict[str, str]]:
    """What a coordinator should know before (and after) launching; computed, never stale."""
    warnings: list[dict[str, str]] = []
    if campaign.channel == "sms" and campaign.expects_replies:
        sender = sender_of(campaign, settings)
        if _LETTER.search(sender):
            warnings.append(
                {
                    "code": "alphanumeric_sender",
                    "detail": (
                        f"L'expéditeur « {sender} » est alphanumérique : les destinataires "
                        "ne pourront pas répondre. Utilisez un numéro bidirectionnel."
                    ),
                }
            )
    return warnings


# --- launch -------------------------------------------------------------------------------


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
            "cost_estimate": _money(Decimal(self.parts) * price_per_part),
        }


_PERSON_FIELDS = ("id", "civility", "first_name", "last_name", "mobile", "landline", "email")


def _today(runtime: Runtime, now: datetime) -> date:
    return now.astimezone(runtime.settings.tz).date()


async def _audience_ids(criteria: dict[str, Any], today: date) -> list[int]:
    # Imported here: the audience module belongs to another part of the service.
    from campaigns.audiences import audience_query

    ids = await audience_query(criteria, today).values_list("id", flat=True)
    return sorted(set(ids))  # a query joining memberships may repeat a person


def _address_key(channel: str, address: str) -> str:
    # E-mail addresses are compared without case (nobody has two boxes differing by case).
    return address.lower() if channel == "email" else address


class _Renderer:
    """Renders one person's message with the template compiled once; caches SMS analyses."""

    def __init__(self, campaign: Campaign, version: TemplateVersion, settings: Settings) -> None:
        self.channel = campaign.channel
        self.version = version
        self.settings = settings
        self.ccas = ccas_vars(settings, campaign.hotline)
        self.campaign = CampaignVars(name=campaign.name)
        self._analyses: dict[str, SmsAnalysis] = {}

    def render(self, row: dict[str, Any], run_id: int) -> dict[str, Any]:
        variables = TemplateVars(
            person=person_vars(row["civility"], row["first_name"], row["last_name"]),
            ccas=self.ccas,
            campaign=self.campaign,
        )
        if self.channel == "sms":
            text = render_sms_text(
                self.version.body, variables, optout_mention=self.settings.sms_optout_mention
            )
            sms = self._analyses.get(text)
            if sms is None:
                sms = analyse(text, normalise=True, fold=self.version.fold_accents)
                self._analyses[text] = sms
            return {"text": sms.text, "encoding": sms.encoding, "segments": sms.segments}
        url = unsubscribe_url(
            self.settings.public_url, self.settings.signing_key, (row["email"] or "").strip()
        )
        email = render_email(
            self.version.subject or "", self.version.body, self.version.body_html, variables, url
        )
        return {"subject": email.subject, "text": email.text, "html": email.html, "segments": 1}


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
    renderer: _Renderer,
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
                content = renderer.render(row, run_id)
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
    renderer = _Renderer(campaign, version, settings)
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
    version = await _check_version(campaign)
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
    await _check_version(campaign)
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
    version = await _check_version(campaign)
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
        await _enqueue(runtime, run.id)
    else:
        await finish_run(run.id, now)
        await campaign.refresh_from_db()
    return {
        "status": campaign.status.value,
        "run": {"id": run.id, "number": number},
        **detail,
        "warnings": _plan_warnings(plan),
    }


async def _enqueue(runtime: Runtime, run_id: int) -> None:
    if runtime.queue is not None:
        await runtime.queue.enqueue("dispatch_run", run_id, job_id=f"dispatch:{run_id}")


async def finish_run(run_id: int, now: datetime) -> None:
    """Close a run with nothing left to send (for dispatch): the campaign completes or waits.

    A recurring campaign goes back to `scheduled` until its next run; any other becomes
    `completed`. A paused or cancelled campaign keeps its status.
    """
    run = await CampaignRun.get(id=run_id)
    if run.completed_at is None:
        await CampaignRun.filter(id=run_id, completed_at=None).update(completed_at=now)
    campaign = await Campaign.get(id=run.campaign_id)  # type: ignore[attr-defined]
    if campaign.status != S.RUNNING:
        return
    if await Message.filter(campaign_id=campaign.id, status__in=PENDING).exists():
        return  # another run of the campaign is still sending
    if campaign.recurrence_days and campaign.next_run_at is not None:
        await Campaign.filter(id=campaign.id, status=S.RUNNING).update(status=S.SCHEDULED)
    else:
        await Campaign.filter(id=campaign.id, status=S.RUNNING).update(
            status=S.COMPLETED, completed_at=now
        )


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


# --- pause, resume, cancel ----------------------------------------------------------------


async def pause(campaign_id: int, *, actor: Actor, reason: str | None = None) -> Campaign:
    """Dispatch checks the status before each batch: sending stops within one batch."""
    campaign = await get_campaign(campaign_id)
    await _claim(campaign, "pause", status=S.PAUSED, status_reason=reason)
    await audit.record(actor, "campaign.pause", "campaign", campaign.id)
    return campaign


async def resume(campaign_id: int, *, actor: Actor, runtime: Runtime) -> Campaign:
    """Back to running; each run with messages still queued is handed to dispatch again."""
    campaign = await get_campaign(campaign_id)
    await _claim(campaign, "resume", status=S.RUNNING, status_reason=None)
    run_ids = await (
        Message.filter(campaign_id=campaign.id, status=MessageStatus.QUEUED)
        .distinct()
        .values_list("run_id", flat=True)
    )
    for run_id in sorted(set(run_ids)):
        await _enqueue(runtime, run_id)
    if not run_ids:
        latest = await CampaignRun.filter(campaign_id=campaign.id).order_by("-number").first()
        if latest is not None:
            await finish_run(latest.id, runtime.clock())
        await campaign.refresh_from_db()
    await audit.record(actor, "campaign.resume", "campaign", campaign.id, runs=len(set(run_ids)))
    return campaign


async def cancel(campaign_id: int, *, actor: Actor, now: datetime) -> dict[str, Any]:
    """Cancelled for good: queued messages become `cancelled` in one update, no further run."""
    campaign = await get_campaign(campaign_id)
    async with in_transaction():
        await _claim(campaign, "cancel", status=S.CANCELLED, next_run_at=None, completed_at=now)
        cancelled = await Message.filter(
            campaign_id=campaign.id, status=MessageStatus.QUEUED
        ).update(status=MessageStatus.CANCELLED, settled_at=now)
        await CampaignRun.filter(campaign_id=campaign.id, completed_at=None).update(
            completed_at=now
        )
    await audit.record(actor, "campaign.cancel", "campaign", campaign.id, cancelled=cancelled)
    return {"status": campaign.status.value, "cancelled_messages": cancelled}


# --- test send ----------------------------------------------------------------------------


async def send_test_message(
    campaign_id: int, *, staff: Staff, runtime: Runtime, to: str | None = None
) -> dict[str, Any]:
    """Send the campaign's message, rendered for the sample person, to a staff member.

    It goes to the caller's own phone or e-mail unless `to` is given; it is not a
    Message of the campaign (it counts in no statistic) but it is audited.
    """
    from providers.base import EmailRequest, SmsRequest

    campaign = await get_campaign(campaign_id)
    version = await _check_version(campaign)
    settings = runtime.settings
    address = (to or (staff.phone if campaign.channel == "sms" else staff.email) or "").strip()
    if not address:
        what = "numéro de téléphone" if campaign.channel == "sms" else "adresse e-mail"
        raise Invalid(f"Aucun {what} pour l'envoi de test.", code="no_test_address")
    if campaign.channel == "sms":
        from campaigns.phones import parse_phone

        phone = parse_phone(address, settings.ccas_region)
        if phone is None or not phone.sms_capable:
            raise Invalid("Le numéro de test n'est pas un mobile valide.", code="bad_test_address")
        address = phone.e164
    elif "@" not in address:
        raise Invalid("L'adresse e-mail de test est invalide.", code="bad_test_address")
    if await OptOut.exists(address__in=[address, address.lower()], active=True):
        raise Conflict("Cette adresse a demandé à ne plus rien recevoir.", code="opted_out")
    renderer = _Renderer(campaign, version, settings)
    sample = sample_person()
    row = {
        "id": 0,
        "civility": sample.civility,
        "first_name": sample.first_name,
        "last_name": sample.last_name,
    }
    message_id = f"test-{campaign.id}-{int(runtime.clock().timestamp())}"
    try:
        content = renderer.render(row, 0)
    except TemplateError as exc:
        raise template_error(exc) from None
    if campaign.channel == "sms":
        if runtime.sms is None:
            raise Conflict("Aucun fournisseur SMS n'est configuré.", code="no_provider")
        result = await runtime.sms.send_sms(
            SmsRequest(
                message_id=message_id,
                to=address,
                sender=sender_of(campaign, settings),
                text=content["text"],
                unicode=content["encoding"] == "UCS-2",
            )
        )
    else:
        if runtime.email is None:
            raise Conflict("Aucun fournisseur d'e-mail n'est configuré.", code="no_provider")
        result = await runtime.email.send_email(
            EmailRequest(
                message_id=message_id,
                to=address,
                sender=settings.email_sender,
                subject=content["subject"],
                text=content["text"],
                html=content["html"],
            )
        )
    await audit.record(
        audit_actor(staff), "campaign.test_send", "campaign", campaign.id, outcome=result.outcome
    )
    return {
        "outcome": result.outcome.value,
        "reason": result.reason,
        "to": address,
        "segments": content["segments"],
        "encoding": content.get("encoding"),
    }


def audit_actor(staff: Staff) -> Actor:
    return Actor(staff.id, staff.email, staff.role.value)


# --- stats, listing, export ---------------------------------------------------------------


def _money(value: Decimal) -> str:
    # Euros as a coordinator reads them: half a cent rounds up, as on an invoice.
    return str(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


async def campaign_stats(campaign_id: int, settings: Settings | None = None) -> dict[str, Any]:
    """Everything the campaign page shows: status, counts, parts, costs, delivery, warnings."""
    campaign = await get_campaign(campaign_id)
    rows = (
        await Message.filter(campaign_id=campaign.id)
        .annotate(n=Count("id"), parts=Sum("segments"))
        .group_by("status")
        .values("status", "n", "parts")
    )
    counts = {status.value: 0 for status in MessageStatus}
    parts_by_status: dict[str, int] = {}
    for row in rows:
        counts[str(row["status"])] = row["n"]
        parts_by_status[str(row["status"])] = int(row["parts"] or 0)
    skipped_rows = (
        await Message.filter(campaign_id=campaign.id, status=MessageStatus.SKIPPED)
        .annotate(n=Count("id"))
        .group_by("skip_reason")
        .values("skip_reason", "n")
    )
    sent = (
        await Message.filter(campaign_id=campaign.id, sent_at__not_isnull=True)
        .annotate(n=Count("id"), parts=Sum("segments"))
        .values("n", "parts")
    )
    priced = (
        await Message.filter(campaign_id=campaign.id, price__not_isnull=True)
        .annotate(total=Sum("price"), parts=Sum("segments"))
        .values("total", "parts")
    )
    sent_count = int(sent[0]["n"] or 0) if sent else 0
    parts_sent = int(sent[0]["parts"] or 0) if sent else 0
    known_price = Decimal(str(priced[0]["total"] or 0)) if priced else Decimal(0)
    priced_parts = int(priced[0]["parts"] or 0) if priced else 0
    price = Decimal(campaign.price_per_part)
    # Provider-reported prices where known, the configured price per part otherwise.
    actual = known_price + max(parts_sent - priced_parts, 0) * price
    recipients = sum(n for status, n in counts.items() if status != MessageStatus.SKIPPED)
    parts_planned = sum(p for status, p in parts_by_status.items() if status != "skipped")
    version = await TemplateVersion.get(id=campaign.template_version_id)  # type: ignore[attr-defined]
    runs = await CampaignRun.filter(campaign_id=campaign.id).order_by("number")
    data = describe_campaign(campaign)
    data.update(
        template={
            "id": version.template_id,  # type: ignore[attr-defined]
            "version": version.version,
            "version_id": version.id,
        },
        counts=counts,
        recipients=recipients,
        skipped_by_reason={str(r["skip_reason"]): r["n"] for r in skipped_rows},
        parts_sent=parts_sent,
        cost_estimate={
            "parts": parts_planned,
            "recipients": recipients,
            "price_per_part": str(price),
            "total": _money(Decimal(parts_planned) * price),
        },
        cost_actual=_money(actual),
        delivery_rate=round(counts["delivered"] / sent_count, 4) if sent_count else None,
        runs=[
            {
                "id": run.id,
                "number": run.number,
                "started_at": run.started_at.isoformat(),
                "completed_at": run.completed_at.isoformat() if run.completed_at else None,
                "recipients": run.recipients,
                "skipped": run.skipped,
            }
            for run in runs
        ],
    )
    if settings is not None:
        data["warnings"] = campaign_warnings(campaign, settings)
    return data


def describe_campaign(campaign: Campaign) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    snapshot = campaign.audience_snapshot or {}
    return {
        "id": campaign.id,
        "name": campaign.name,
        "channel": campaign.channel,
        "status": campaign.status.value,
        "status_label": STATUS_LABELS[CampaignStatus(campaign.status)],
        "status_reason": campaign.status_reason,
        "template_version_id": campaign.template_version_id,  # type: ignore[attr-defined]
        "audience_id": campaign.audience_id,
        "audience_count": snapshot.get("count"),
        "sender": campaign.sender,
        "expects_replies": campaign.expects_replies,
        "scheduled_at": iso(campaign.scheduled_at),
        "recurrence_days": campaign.recurrence_days,
        "next_run_at": iso(campaign.next_run_at),
        "price_per_part": str(campaign.price_per_part),
        "created_at": iso(campaign.created_at),
        "launched_at": iso(campaign.launched_at),
        "completed_at": iso(campaign.completed_at),
    }


async def list_campaigns(status: str | None = None) -> list[dict[str, Any]]:
    query = Campaign.all().order_by("-created_at", "-id")
    if status:
        query = query.filter(status=status)
    campaigns = await query
    counts = (
        await Message.filter(campaign_id__in=[c.id for c in campaigns])
        .annotate(n=Count("id"))
        .group_by("campaign_id", "status")
        .values("campaign_id", "status", "n")
    )
    by_campaign: dict[int, dict[str, int]] = {}
    for row in counts:
        by_campaign.setdefault(row["campaign_id"], {})[str(row["status"])] = row["n"]
    return [{**describe_campaign(c), "counts": by_campaign.get(c.id, {})} for c in campaigns]


MESSAGE_FIELDS = (
    "id",
    "run_id",
    "person_id",
    "channel",
    "address",
    "status",
    "skip_reason",
    "error",
    "encoding",
    "segments",
    "attempts",
    "sent_at",
    "settled_at",
)


def _message_query(campaign_id: int, status: str | None) -> Any:
    query = Message.filter(campaign_id=campaign_id)
    if status:
        try:
            query = query.filter(status=MessageStatus(status))
        except ValueError:
            raise Invalid(f"Statut de message inconnu : {status}", code="bad_status") from None
    return query


async def list_messages(
    campaign_id: int, *, status: str | None = None, page: int = 1, per_page: int = 50
) -> dict[str, Any]:
    """One page of the per-recipient record, with the text that was (or will be) sent."""
    await get_campaign(campaign_id)
    page = max(page, 1)
    query = _message_query(campaign_id, status)
    total = await query.count()
    rows = (
        await query.order_by("id")
        .offset((page - 1) * per_page)
        .limit(per_page)
        .values(*MESSAGE_FIELDS, "subject", "text")
    )
    return {
        "items": [_jsonable(row) for row in rows],
        "page": page,
        "per_page": per_page,
        "total": total,
        "pages": (total + per_page - 1) // per_page,
    }


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


CSV_COLUMNS = MESSAGE_FIELDS


async def messages_csv(campaign_id: int, *, status: str | None = None) -> AsyncIterator[str]:
    """The per-recipient record as CSV, in chunks (keyset pages, never the whole table at once)."""
    await get_campaign(campaign_id)
    query = _message_query(campaign_id, status)
    yield _csv_lines([CSV_COLUMNS])
    last = 0
    while True:
        rows = await query.filter(id__gt=last).order_by("id").limit(BATCH).values(*CSV_COLUMNS)
        if not rows:
            return
        last = rows[-1]["id"]
        yield _csv_lines(
            [[_csv_cell(row[c]) for c in CSV_COLUMNS] for row in rows]  # type: ignore[misc]
        )


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _csv_lines(rows: Iterable[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


__all__ = [
    "campaign_stats",
    "campaign_warnings",
    "cancel",
    "create_campaign",
    "describe_campaign",
    "finish_run",
    "launch",
    "list_campaigns",
    "list_messages",
    "messages_csv",
    "pause",
    "preview_launch",
    "resume",
    "schedule",
    "send_test_message",
    "sender_of",
    "start_due_runs",
]

"""The life of a campaign: create, schedule, pause, resume, cancel, a test send, a run's end.

The launch itself (audience snapshot, one Message per person) is in `campaign_launch`;
statistics, listings and the CSV export in `campaign_reports`.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from tortoise.transactions import in_transaction

from campaigns.calls.generation import cancel_open_tasks
from campaigns.campaign.journey_spec import check_journey
from campaigns.core import audit
from campaigns.core.audit import Actor
from campaigns.core.errors import Conflict, Invalid, NotFound
from campaigns.core.runtime import Runtime
from campaigns.core.settings import Settings
from campaigns.messages.renderer import CampaignRenderer
from campaigns.messages.rendering import TemplateError, check_template, sample_person
from campaigns.messages.template_store import template_error
from campaigns.models import (
    Audience,
    Campaign,
    CampaignRun,
    CampaignStatus,
    Message,
    MessageStatus,
    OptOut,
    Staff,
    Template,
    TemplateVersion,
)

S = CampaignStatus
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

# Messages that have left for the provider, whatever happened to them next.
PENDING = (MessageStatus.QUEUED, MessageStatus.SENDING)

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
    journey: dict[str, Any] | None = None,
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
    if journey is not None:
        journey = await check_journey(channel, journey)
    campaign = await Campaign.create(
        name=name[:200],
        channel=channel,
        template_version=version,
        audience_id=audience_id,
        sender=_check_sender(sender) if channel == "sms" else None,
        hotline=hotline,
        # A call campaign sends nothing, so nothing comes back by SMS.
        expects_replies=expects_replies and channel != "appel",
        scheduled_at=scheduled_at,
        recurrence_days=recurrence_days,
        price_per_part=settings.sms_price_per_part if channel == "sms" else Decimal(0),
        created_by_id=actor.id,
        journey=journey,
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
    await check_version(campaign)
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


async def check_version(campaign: Campaign) -> TemplateVersion:
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


# --- costs --------------------------------------------------------------------------------


def money(value: Decimal) -> str:
    # Euros as a coordinator reads them: half a cent rounds up, as on an invoice.
    return str(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


# --- end of a run -------------------------------------------------------------------------


async def enqueue_dispatch(runtime: Runtime, run_id: int) -> None:
    """Hand a run to the dispatch workers: at most one queued job per run (its id is the run's)."""
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
    run_ids: list[Any] = await (
        Message.filter(campaign_id=campaign.id, status=MessageStatus.QUEUED)
        .distinct()
        .values_list("run_id", flat=True)
    )
    for run_id in sorted(set(run_ids)):
        await enqueue_dispatch(runtime, run_id)
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
        # A call campaign's calls not yet made are not made (one in hand is finished).
        cancelled += await cancel_open_tasks(campaign.id, keep_run=None, now=now)
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
    version = await check_version(campaign)
    settings = runtime.settings
    address = (to or (staff.phone if campaign.channel == "sms" else staff.email) or "").strip()
    if not address:
        what = "numéro de téléphone" if campaign.channel == "sms" else "adresse e-mail"
        raise Invalid(f"Aucun {what} pour l'envoi de test.", code="no_test_address")
    if campaign.channel == "sms":
        from campaigns.rules.phones import parse_phone

        phone = parse_phone(address, settings.ccas_region)
        if phone is None or not phone.sms_capable:
            raise Invalid("Le numéro de test n'est pas un mobile valide.", code="bad_test_address")
        address = phone.e164
    elif "@" not in address:
        raise Invalid("L'adresse e-mail de test est invalide.", code="bad_test_address")
    if await OptOut.exists(address__in=[address, address.lower()], active=True):
        raise Conflict("Cette adresse a demandé à ne plus rien recevoir.", code="opted_out")
    renderer = CampaignRenderer(campaign, version, settings)
    sample = sample_person()
    row = {
        "id": 0,
        "civility": sample.civility,
        "first_name": sample.first_name,
        "last_name": sample.last_name,
    }
    message_id = f"test-{campaign.id}-{int(runtime.clock().timestamp())}"
    try:
        content = renderer.render(row)
    except TemplateError as exc:
        raise template_error(exc) from None
    if campaign.channel == "sms":
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


__all__ = [
    "STATUS_LABELS",
    "audit_actor",
    "campaign_warnings",
    "cancel",
    "check_transition",
    "check_version",
    "create_campaign",
    "enqueue_dispatch",
    "finish_run",
    "get_campaign",
    "money",
    "pause",
    "resume",
    "schedule",
    "send_test_message",
    "sender_of",
]

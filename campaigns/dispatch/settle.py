"""Settling `unconfirmed` messages nobody can confirm: re-send them, or close them as not sent.

A message is unconfirmed when its provider call may have reached the provider but no
answer was recorded (a worker killed mid-call, a timeout after sending). Its receipt
normally settles it within minutes. Once `CAMPAIGNS_RECEIPT_WINDOW_HOURS` have passed
without one, the campaign says so ("N messages non confirmés") and a coordinator
decides, both choices audited:
- re-send: back to the queue, sent again by dispatch; a few people may get it twice
  (those whose first send did leave and whose receipt was lost);
- close: `failed`, with a French reason saying it was closed as not sent.
Nothing stays unconfirmed without a person being told.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tortoise.expressions import Q
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from campaigns.campaign import lifecycle
from campaigns.core import audit
from campaigns.core.audit import Actor
from campaigns.core.errors import Conflict
from campaigns.core.runtime import Runtime
from campaigns.core.settings import Settings
from campaigns.models import Campaign, CampaignRun, CampaignStatus, Message, MessageStatus

__all__ = [
    "DEFAULT_WINDOW_HOURS",
    "RESEND_WARNING",
    "close_unconfirmed",
    "overdue_warning",
    "resend_unconfirmed",
    "unconfirmed_overdue",
]

M = MessageStatus
S = CampaignStatus
RESEND_WARNING = (
    "Attention : quelques personnes pourraient recevoir ce message deux fois. Leur premier "
    "envoi est peut-être parti sans que l'opérateur ne l'ait confirmé."
)


DEFAULT_WINDOW_HOURS = 6.0  # CAMPAIGNS_RECEIPT_WINDOW_HOURS's default


def _cutoff(hours: float, now: datetime) -> datetime:
    return now - timedelta(hours=hours)


def _overdue(campaign_id: int, cutoff: datetime) -> QuerySet[Message]:
    """Unconfirmed messages handed to the provider before `cutoff`, with no receipt since."""
    left_before = Q(sent_at__lte=cutoff) | Q(sent_at__isnull=True, handed_at__lte=cutoff)
    undated = Q(sent_at__isnull=True, handed_at__isnull=True)
    return Message.filter(campaign_id=campaign_id, status=M.UNCONFIRMED).filter(
        left_before | undated
    )


async def unconfirmed_overdue(
    campaign_id: int, now: datetime, window_hours: float = DEFAULT_WINDOW_HOURS
) -> int:
    """How many of the campaign's messages are still unconfirmed after the receipt window."""
    return await _overdue(campaign_id, _cutoff(window_hours, now)).count()


def overdue_warning(count: int, window_hours: float) -> dict[str, str]:
    """What the campaign page says about them, in French."""
    hours = f"{window_hours:g}"
    plural = "s" if count > 1 else ""
    return {
        "code": "unconfirmed_overdue",
        "detail": (
            f"{count} message{plural} non confirmé{plural} : aucun accusé de réception "
            f"{hours} h après l'envoi. On ne sait pas si ces personnes l'ont reçu : "
            "renvoyez-le (quelques-unes pourraient le recevoir deux fois) ou classez-le "
            "comme non envoyé."
        ),
    }


async def _lock_overdue(campaign_id: int, cutoff: datetime, conn: Any) -> list[tuple[int, int]]:
    """(id, run id) of the overdue messages, locked in ascending id order (one lock order
    with the receipt job, which may settle some of them at the same time)."""
    rows = (
        await _overdue(campaign_id, cutoff)
        .order_by("id")
        .select_for_update(no_key=True)
        .only("id", "run_id")
        .using_db(conn)
    )
    return [(row.id, row.run_id) for row in rows]  # type: ignore[attr-defined]


async def resend_unconfirmed(campaign_id: int, *, actor: Actor, runtime: Runtime) -> dict[str, Any]:
    """Queue the overdue unconfirmed messages again and start sending them; audited.

    A completed campaign (or a recurring one between occurrences) runs again for them, and
    completes (or waits for its next occurrence) again once they are sent; a paused one
    sends them when resumed; a cancelled one refuses.
    """
    campaign = await lifecycle.get_campaign(campaign_id)
    if campaign.status in (S.CANCELLED, S.DRAFT):
        label = lifecycle.STATUS_LABELS[S(campaign.status)]
        raise Conflict(
            f"Impossible de renvoyer ces messages : la campagne est {label}.",
            code="invalid_transition",
        )
    now = runtime.clock()
    async with in_transaction() as conn:
        cutoff = _cutoff(runtime.settings.receipt_window_hours, now)
        rows = await _lock_overdue(campaign.id, cutoff, conn)
        ids = [mid for mid, _ in rows]
        if ids:
            await (
                Message.filter(id__in=ids, status=M.UNCONFIRMED)
                .using_db(conn)
                .update(
                    status=M.QUEUED,
                    claimed_by=None,
                    handed_at=None,
                    next_attempt_at=None,
                    error=None,
                )
            )
            runs = sorted({run_id for _, run_id in rows})
            await CampaignRun.filter(id__in=runs).using_db(conn).update(completed_at=None)
            if campaign.status in (S.COMPLETED, S.SCHEDULED):
                await (
                    Campaign.filter(id=campaign.id, status=campaign.status)
                    .using_db(conn)
                    .update(status=S.RUNNING, completed_at=None)
                )
    if ids:
        await campaign.refresh_from_db()
        if campaign.status == S.RUNNING:
            for run_id in sorted({run_id for _, run_id in rows}):
                await lifecycle.enqueue_dispatch(runtime, run_id)
    await audit.record(
        actor, "campaign.unconfirmed_resend", "campaign", campaign.id, messages=len(ids)
    )
    return {"resent": len(ids), "warning": RESEND_WARNING, "status": campaign.status.value}


async def close_unconfirmed(
    campaign_id: int, *, actor: Actor, settings: Settings, now: datetime
) -> dict[str, Any]:
    """Close the overdue unconfirmed messages as not sent (`failed`, said why); audited."""
    campaign = await lifecycle.get_campaign(campaign_id)
    hours = f"{settings.receipt_window_hours:g}"
    reason = (
        f"Classé comme non envoyé par la coordination : aucun accusé de réception "
        f"{hours} h après l'envoi, la personne ne l'a sans doute pas reçu"
    )[:255]
    async with in_transaction() as conn:
        cutoff = _cutoff(settings.receipt_window_hours, now)
        ids = [mid for mid, _ in await _lock_overdue(campaign.id, cutoff, conn)]
        if ids:
            await (
                Message.filter(id__in=ids, status=M.UNCONFIRMED)
                .using_db(conn)
                .update(status=M.FAILED, error=reason, settled_at=now)
            )
    await audit.record(
        actor, "campaign.unconfirmed_close", "campaign", campaign.id, messages=len(ids)
    )
    return {"closed": len(ids), "reason": reason}

"""How far a campaign has got: the share of recipients dealt with, and its funnel.

One computation for the API, the campaign page and its live polling.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from campaigns.campaign.reports import campaign_stats
from campaigns.core.clock import utcnow
from campaigns.core.settings import Settings
from campaigns.models import Escalation, Message, MessageStatus, Reply
from campaigns.rules.send_window import closed_notice, parse_send_window

M = MessageStatus
PENDING = (M.QUEUED, M.SENDING)
FINAL_CAMPAIGN = ("completed", "cancelled")


def progress_percent(counts: dict[str, int], status: str) -> int:
    """The share of recipients whose message has left the queue (100 when the campaign is over)."""
    recipients = sum(n for s, n in counts.items() if s != M.SKIPPED.value)
    if status in FINAL_CAMPAIGN and not any(counts.get(s.value, 0) for s in PENDING):
        return 100
    if recipients == 0:
        return 0
    pending = sum(counts.get(s.value, 0) for s in PENDING)
    return int(100 * (recipients - pending) / recipients)


async def funnel_counts(campaign_id: int, counts: dict[str, int]) -> dict[str, int]:
    """Queued, sent, delivered, failed, replied, escalated: each step a subset of the one before."""
    sent = await Message.filter(campaign_id=campaign_id, sent_at__not_isnull=True).count()
    replied = await Reply.filter(campaign_id=campaign_id).values_list("msisdn", flat=True)
    escalation_ids = await Reply.filter(
        campaign_id=campaign_id, escalation_id__not_isnull=True
    ).values_list("escalation_id", flat=True)
    escalated = await Escalation.filter(id__in=set(escalation_ids)).count()
    return {
        "queued": sum(n for s, n in counts.items() if s != M.SKIPPED.value),
        "sent": sent,
        "delivered": counts.get(M.DELIVERED.value, 0),
        "failed": sum(counts.get(s.value, 0) for s in (M.FAILED, M.REJECTED, M.EXPIRED)),
        "replied": len(set(replied)),
        "escalated": escalated,
    }


def journey_funnel(steps: list[dict[str, Any]]) -> dict[str, int]:
    """The journey's later steps, continuing the funnel: reminded, calls planned, reached."""
    by_step = {step["step"]: step for step in steps}
    funnel: dict[str, int] = {}
    if "relance" in by_step:
        funnel["reminded"] = by_step["relance"]["recipients"]
    if "appel" in by_step:
        funnel["called"] = by_step["appel"]["tasks"] - by_step["appel"]["cancelled"]
        funnel["reached_by_call"] = by_step["appel"]["reached"]
    return funnel


def waiting_reason(
    stats: dict[str, Any], settings: Settings, now: datetime | None = None
) -> str | None:
    """Why a running campaign with messages left sends nothing now (its send window)."""
    pending = sum(stats["counts"].get(s.value, 0) for s in PENDING)
    if stats["status"] != "running" or not pending:
        return None
    window = parse_send_window(
        stats.get("send_window") or settings.send_window, settings.timezone, settings.holidays
    )
    return closed_notice(window, now or utcnow())


async def campaign_state(
    campaign_id: int, settings: Settings | None, now: datetime | None = None
) -> dict[str, Any]:
    """Stats, progress and funnel of one campaign, and why it waits when it does."""
    stats = await campaign_stats(campaign_id, settings, now)
    stats["progress_percent"] = progress_percent(stats["counts"], stats["status"])
    stats["funnel"] = await funnel_counts(campaign_id, stats["counts"])
    stats["funnel"].update(journey_funnel(stats.get("journey_steps") or []))
    if settings is not None and not stats.get("status_reason"):
        stats["status_reason"] = waiting_reason(stats, settings, now)
    return stats

"""How far a campaign has got: the share of recipients dealt with, and its funnel.

One computation for the API, the campaign page and its live polling.
"""

from __future__ import annotations

from typing import Any

from campaigns.campaign.reports import campaign_stats
from campaigns.core.settings import Settings
from campaigns.models import Escalation, Message, MessageStatus, Reply

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


async def campaign_state(campaign_id: int, settings: Settings | None) -> dict[str, Any]:
    """Stats, progress and funnel of one campaign."""
    stats = await campaign_stats(campaign_id, settings)
    stats["progress_percent"] = progress_percent(stats["counts"], stats["status"])
    stats["funnel"] = await funnel_counts(campaign_id, stats["counts"])
    return stats

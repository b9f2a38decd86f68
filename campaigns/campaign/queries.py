"""Read-only views of campaigns for the staff pages: what is under way, what failed, which text."""

from __future__ import annotations

from campaigns.models import Campaign, CampaignStatus, Message, MessageStatus, TemplateVersion

M = MessageStatus
# Messages that will not be delivered after all (sent and refused, or left unconfirmed).
FAILURES = (M.FAILED, M.REJECTED, M.EXPIRED, M.UNCONFIRMED)
UNDER_WAY = (CampaignStatus.RUNNING, CampaignStatus.PAUSED, CampaignStatus.SCHEDULED)


async def campaigns_under_way(limit: int = 20) -> list[Campaign]:
    """Running, paused and scheduled campaigns, newest first."""
    return await Campaign.filter(status__in=list(UNDER_WAY)).order_by("-id").limit(limit)


async def recent_failures(campaign_id: int, limit: int = 100) -> list[Message]:
    return (
        await Message.filter(campaign_id=campaign_id, status__in=list(FAILURES))
        .order_by("-id")
        .limit(limit)
    )


async def template_version_of(campaign: Campaign) -> TemplateVersion:
    """The template version the campaign sends (frozen when it was created)."""
    return await TemplateVersion.get(id=campaign.template_version_id)  # type: ignore[attr-defined]

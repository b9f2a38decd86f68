"""The dashboard: running campaigns, open escalations per queue, what is overdue."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from campaigns.campaign import queries as campaign_queries
from campaigns.campaign.lifecycle import STATUS_LABELS
from campaigns.core.settings import Settings
from campaigns.escalations import queries as escalation_queries
from campaigns.models import Campaign, CampaignStatus
from campaigns.rules.queues import QUEUE_LABELS
from campaigns.rules.send_window import closed_notice, parse_send_window
from campaigns.staff import ALL_ROLES, CALLERS, is_manager
from campaigns.web.keys import RUNTIME
from campaigns.web.pages.base import PageRouter, current_page_staff

router = PageRouter()


# Open to every caller so that "/" (where login lands) takes a volunteer to their calls
# rather than to a 403: the dashboard itself shows queues and campaigns, not for them.
@router.page("GET", "/", CALLERS, "dashboard.html")
async def dashboard(request: web.Request) -> dict[str, Any]:
    staff = current_page_staff(request)
    if staff.role not in ALL_ROLES:
        raise web.HTTPFound("/appels")
    now = request.app[RUNTIME].clock()
    visible = list(QUEUE_LABELS) if is_manager(staff) else list(staff.queues or [])
    counts = await escalation_queries.queue_counts(visible, now=now)
    queues = [
        {
            "code": code,
            "label": QUEUE_LABELS.get(code, code),
            # The dashboard shows the work waiting: snoozed situations are not yet due.
            "open": counts[code].waiting,
            "overdue": counts[code].overdue,
        }
        for code in visible
    ]
    running = await campaign_queries.campaigns_under_way(20) if is_manager(staff) else []
    settings = request.app[RUNTIME].settings
    return {
        "queues": queues,
        "overdue_total": sum(q["overdue"] for q in queues),
        "campaigns": running,
        "reasons": {c.id: waiting_notice(c, settings, now) for c in running},
        "status_labels": STATUS_LABELS,
    }


def waiting_notice(campaign: Campaign, settings: Settings, now: datetime) -> str | None:
    """Why a running campaign sends nothing now: its send window is closed (else None).

    The status reason a campaign carries (a pause's cause...) comes first; the live
    polling then keeps the notice up to date from the campaign's own state.
    """
    if campaign.status_reason:
        return campaign.status_reason
    if campaign.status != CampaignStatus.RUNNING:
        return None
    window = parse_send_window(
        campaign.send_window or settings.send_window, settings.timezone, settings.holidays
    )
    return closed_notice(window, now)

"""The dashboard: running campaigns, open escalations per queue, what is overdue."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from campaigns.campaign import queries as campaign_queries
from campaigns.campaign.lifecycle import STATUS_LABELS
from campaigns.escalations import queries as escalation_queries
from campaigns.rules.queues import QUEUE_LABELS
from campaigns.staff import ALL_ROLES, is_manager
from campaigns.web.keys import RUNTIME
from campaigns.web.pages.base import PageRouter, current_page_staff

router = PageRouter()


@router.page("GET", "/", ALL_ROLES, "dashboard.html")
async def dashboard(request: web.Request) -> dict[str, Any]:
    staff = current_page_staff(request)
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
    return {
        "queues": queues,
        "overdue_total": sum(q["overdue"] for q in queues),
        "campaigns": running,
        "status_labels": STATUS_LABELS,
    }

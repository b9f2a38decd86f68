"""The dashboard: running campaigns, open escalations per queue, what is overdue."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from campaigns.campaign.lifecycle import STATUS_LABELS
from campaigns.models import Campaign, CampaignStatus, Escalation, EscalationStatus
from campaigns.rules.queues import QUEUE_LABELS
from campaigns.web.keys import RUNTIME
from campaigns.web.pages.base import ALL, PageRouter, current_page_staff

router = PageRouter()


@router.page("GET", "/", ALL, "dashboard.html")
async def dashboard(request: web.Request) -> dict[str, Any]:
    staff = current_page_staff(request)
    now = request.app[RUNTIME].clock()
    visible = staff.queues if staff.role.value == "caseworker" else list(QUEUE_LABELS)
    open_states = [EscalationStatus.OPEN, EscalationStatus.CLAIMED]
    queues = []
    for code in visible:
        base = Escalation.filter(queue=code, status__in=open_states)
        queues.append(
            {
                "code": code,
                "label": QUEUE_LABELS.get(code, code),
                "open": await base.count(),
                "overdue": await base.filter(due_at__lt=now).count(),
            }
        )
    running = []
    if staff.role.value != "caseworker":
        running = (
            await Campaign.filter(
                status__in=[CampaignStatus.RUNNING, CampaignStatus.PAUSED, CampaignStatus.SCHEDULED]
            )
            .order_by("-id")
            .limit(20)
        )
    return {
        "queues": queues,
        "overdue_total": sum(q["overdue"] for q in queues),
        "campaigns": running,
        "status_labels": STATUS_LABELS,
    }

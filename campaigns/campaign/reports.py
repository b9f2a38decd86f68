"""What a campaign shows: its statistics, the campaign list, its messages and their CSV export."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from tortoise.functions import Count, Sum

from campaigns.calls.coverage import call_counts
from campaigns.campaign.journeys import journey_steps
from campaigns.campaign.lifecycle import STATUS_LABELS, campaign_warnings, get_campaign, money
from campaigns.core.clock import utcnow
from campaigns.core.csv_cells import safe_row
from campaigns.core.errors import Invalid
from campaigns.core.settings import Settings
from campaigns.dispatch import settle
from campaigns.models import (
    Campaign,
    CampaignRun,
    CampaignStatus,
    Message,
    MessageStatus,
    TemplateVersion,
)

# Rows per keyset page of the CSV export.
CSV_PAGE = 1000


async def campaign_stats(
    campaign_id: int, settings: Settings | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Everything the campaign page shows: status, counts, parts, costs, delivery, warnings.

    `unconfirmed_overdue`: messages still unconfirmed after the receipt window, which a
    coordinator must re-send or close (see `campaigns.dispatch.settle`).
    """
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
            "total": money(Decimal(parts_planned) * price),
        },
        cost_actual=money(actual),
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
    hours = settings.receipt_window_hours if settings else settle.DEFAULT_WINDOW_HOURS
    overdue = 0
    if counts[MessageStatus.UNCONFIRMED.value]:
        overdue = await settle.unconfirmed_overdue(campaign.id, now or utcnow(), hours)
    data["unconfirmed_overdue"] = overdue
    if campaign.channel == "appel":
        data["calls"] = await call_counts(campaign.id)
    data["journey_steps"] = await journey_steps(campaign)
    if settings is not None:
        data["warnings"] = campaign_warnings(campaign, settings)
        if overdue:
            data["warnings"].append(settle.overdue_warning(overdue, hours))
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
        "send_window": campaign.send_window,
        "created_at": iso(campaign.created_at),
        "launched_at": iso(campaign.launched_at),
        "completed_at": iso(campaign.completed_at),
        "journey": campaign.journey,
        "parent_id": campaign.parent_id,
        "step": campaign.step,
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
        rows = await query.filter(id__gt=last).order_by("id").limit(CSV_PAGE).values(*CSV_COLUMNS)
        if not rows:
            return
        last = rows[-1]["id"]
        yield _csv_lines([[_csv_cell(row[c]) for c in CSV_COLUMNS] for row in rows])


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _csv_lines(rows: Iterable[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    # Message texts and addresses are typed by others: a spreadsheet must not run them.
    csv.writer(buffer, lineterminator="\r\n").writerows(safe_row(row) for row in rows)
    return buffer.getvalue()


__all__ = [
    "MESSAGE_FIELDS",
    "campaign_stats",
    "describe_campaign",
    "list_campaigns",
    "list_messages",
    "messages_csv",
]

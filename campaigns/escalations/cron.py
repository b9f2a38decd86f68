"""The escalations' timed changes: snoozed ones wake at their callback date, late ones are flagged.

Both are idempotent (a re-run after a crash does nothing twice): each row changes under
a condition on its current state.
"""

from __future__ import annotations

import logging
from datetime import datetime

from tortoise.transactions import in_transaction

from campaigns.core import audit
from campaigns.core.audit import Actor
from campaigns.core.db import on_postgres
from campaigns.core.runtime import Runtime
from campaigns.escalations import alerts
from campaigns.escalations.lifecycle import as_utc, late_q, utc_now
from campaigns.models import Escalation, EscalationStatus
from campaigns.rules.queues import compute_due_at, opening_window, rule_for

__all__ = ["flag_overdue", "wake_snoozed"]

log = logging.getLogger(__name__)

S = EscalationStatus


async def wake_snoozed(runtime: Runtime, now: datetime | None = None) -> int:
    """Bring back every snoozed escalation whose callback date has come; returns how many.

    Its due time restarts from the callback date under the queue's rule.
    """
    now = as_utc(now) if now is not None else utc_now(runtime)
    window = opening_window(runtime.settings)
    rows = await Escalation.filter(status=S.SNOOZED, snoozed_until__lte=now).values(
        "id", "queue", "snoozed_until"
    )
    woken = 0
    for row in rows:
        due = compute_due_at(rule_for(runtime.settings, row["queue"]), row["snoozed_until"], window)
        woken += await Escalation.filter(id=row["id"], status=S.SNOOZED).update(
            status=S.OPEN, snoozed_until=None, due_at=due, overdue_notified_at=None, updated_at=now
        )
    if woken:
        log.info("%d snoozed escalation(s) back in their queue", woken)
    return woken


async def flag_overdue(runtime: Runtime, now: datetime | None = None) -> int:
    """Flag, once, each open or claimed escalation past its due time and tell the
    coordinators (counts by queue, no personal data); returns how many were flagged."""
    now = as_utc(now) if now is not None else utc_now(runtime)
    async with in_transaction():
        qs = Escalation.filter(late_q(now), overdue_notified_at__isnull=True)
        if on_postgres():
            qs = qs.select_for_update(skip_locked=True)
        rows = await qs
        ids = [row.id for row in rows]
        if ids:
            await Escalation.filter(id__in=ids).update(overdue_notified_at=now)
    if not ids:
        return 0
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.queue] = counts.get(row.queue, 0) + 1
    await audit.record_many(Actor.system(), "escalation.overdue", "escalation", ids)
    await alerts.alert_overdue(runtime, counts, now)
    log.info("%d escalation(s) flagged overdue", len(ids))
    return len(ids)

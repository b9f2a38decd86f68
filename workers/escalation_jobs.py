"""Cron jobs of the escalation queues: wake snoozed escalations, flag the overdue ones.

Both are idempotent (a re-run after a crash does nothing twice): each row changes
under a condition on its current state.
"""

from __future__ import annotations

from typing import Any

from campaigns.core.runtime import Runtime
from campaigns.escalations.cron import flag_overdue, wake_snoozed

__all__ = ["flag_overdue_escalations", "wake_snoozed_escalations"]


def _runtime(ctx: dict[str, Any]) -> Runtime:
    runtime: Runtime = ctx["runtime"]
    return runtime


async def wake_snoozed_escalations(ctx: dict[str, Any]) -> int:
    """Snoozed escalations whose callback date has come go back to their queue."""
    runtime = _runtime(ctx)
    return await wake_snoozed(runtime, runtime.clock())


async def flag_overdue_escalations(ctx: dict[str, Any]) -> int:
    """Escalations past their due time are flagged once and raised to the coordinators."""
    runtime = _runtime(ctx)
    return await flag_overdue(runtime, runtime.clock())

"""The job functions, the same under arq and in process: each takes ctx (with the Runtime) and ids.

Every job is idempotent: arq runs a job again after its worker was killed, and the
in-process runner after a restart through the periodic `tick`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from campaigns.campaign import launch as campaign_launch
from campaigns.core import audit
from campaigns.core.runtime import Runtime
from campaigns.dispatch import claims, runs
from workers import escalation_jobs, reply_jobs

__all__ = ["FUNCTIONS", "dispatch_lane", "dispatch_run", "tick"]

log = logging.getLogger(__name__)


def runtime_of(ctx: dict[str, Any]) -> Runtime:
    return ctx["runtime"]


async def dispatch_run(ctx: dict[str, Any], run_id: int) -> int:
    """Start (or restart) the sending of a run: enqueues its lanes."""
    return await runs.start_run_dispatch(runtime_of(ctx), run_id)


async def dispatch_lane(
    ctx: dict[str, Any], run_id: int, slot: int, chain: str, bounces: int
) -> str:
    """Send a run's messages batch after batch for a while (see campaigns.dispatch.lanes)."""
    reason = await runs.run_lane(runtime_of(ctx), run_id, slot, chain, bounces)
    log.debug("run %s lane %s stopped: %s", run_id, slot, reason)
    return reason


async def tick(ctx: dict[str, Any]) -> dict[str, int]:
    """Every minute, all the periodic upkeep, each step kept apart from the others' failures.

    Start due runs, settle dead workers' claims, nudge unfinished runs, finalise long
    replies whose parts stopped coming, wake snoozed escalations, flag overdue ones.
    One cron under arq and one timer in process run the very same steps.
    """
    runtime = runtime_of(ctx)
    steps: dict[str, Callable[[], Awaitable[Any]]] = {
        "started": lambda: campaign_launch.start_due_runs(runtime, runtime.clock()),
        "recovered": lambda: claims.recover_stale_claims(runtime),
        "nudged": lambda: runs.kick_running_runs(runtime),
        "replies_finalised": lambda: reply_jobs.finalise_incomplete_replies(ctx),
        "escalations_woken": lambda: escalation_jobs.wake_snoozed_escalations(ctx),
        "escalations_overdue": lambda: escalation_jobs.flag_overdue_escalations(ctx),
        "audit_purged": lambda: _purge_audit(runtime),
    }
    done: dict[str, int] = {}
    for name, step in steps.items():
        try:
            result = await step()
        except Exception:
            log.exception("periodic step %s failed", name)
            continue
        done[name] = len(result) if isinstance(result, list | tuple | set) else int(result)
    return done


async def _purge_audit(runtime: Runtime) -> int:
    retention = timedelta(days=runtime.settings.audit_retention_days)
    return await audit.purge_before(runtime.clock() - retention)


async def on_worker_start(runtime: Runtime) -> None:
    """What a worker does before its first job: settle what a dead predecessor left."""
    await claims.recover_stale_claims(runtime)
    await runs.kick_running_runs(runtime)


FUNCTIONS = {f.__name__: f for f in (dispatch_run, dispatch_lane, tick, *reply_jobs.FUNCTIONS)}

"""The job functions, the same under arq and in process: each takes ctx (with the Runtime) and ids.

Every job is idempotent: arq runs a job again after its worker was killed, and the
in-process runner after a restart through the periodic `tick`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from campaigns.campaign import journeys
from campaigns.campaign import launch as campaign_launch
from campaigns.core import audit
from campaigns.core.runtime import Runtime
from campaigns.dispatch import claims, receipt_store, receipts, runs
from campaigns.dispatch.lanes import record_leftovers
from campaigns.models import DeliveryReceipt
from campaigns.replies.learning import warm_up
from campaigns.replies.summary import send_daily_summary
from workers import escalation_jobs, reply_jobs

__all__ = ["FUNCTIONS", "apply_receipts", "dispatch_lane", "dispatch_run", "tick"]

# Applied receipts are kept this long: Vonage retries a receipt for a day, and a retry
# must find its first copy to be recognised as one.
RECEIPT_RETENTION = timedelta(days=30)

log = logging.getLogger(__name__)


def runtime_of(ctx: dict[str, Any]) -> Runtime:
    runtime: Runtime = ctx["runtime"]
    return runtime


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


async def apply_receipts(ctx: dict[str, Any]) -> int:
    """Apply the stored delivery receipts to messages and parts, in bulk (coalesced job).

    Receipts whose message is still being sent wait a moment: another job is asked for.
    """
    runtime = runtime_of(ctx)
    done = 0
    while True:
        tally = await receipts.apply_pending_receipts(runtime.clock())
        done += tally.applied + tally.unknown
        if tally.total < receipts.BATCH:
            break
    if tally.deferred:
        await receipt_store.request_apply(runtime, after=receipts.DEFER)
    return done


async def _apply_all_receipts(runtime: Runtime) -> int:
    return await apply_receipts({"runtime": runtime})


async def _purge_receipts(runtime: Runtime) -> int:
    cutoff = runtime.clock() - RECEIPT_RETENTION
    return await DeliveryReceipt.filter(applied_at__lt=cutoff).delete()


async def tick(ctx: dict[str, Any]) -> dict[str, int]:
    """Every minute, all the periodic upkeep, each step kept apart from the others' failures.

    Start due runs and journeys' steps, write what an outage left unwritten, settle dead
    workers' claims, apply receipts no job was asked for, nudge unfinished runs, finalise
    long replies whose parts stopped coming, wake snoozed escalations, flag overdue ones,
    forget old audit events and applied receipts.
    One cron under arq and one timer in process run the very same steps.
    """
    runtime = runtime_of(ctx)
    steps: dict[str, Callable[[], Awaitable[Any]]] = {
        "started": lambda: campaign_launch.start_due_runs(runtime, runtime.clock()),
        "journeys": lambda: _advance_journeys(runtime),
        "leftovers": lambda: record_leftovers(runtime),
        "recovered": lambda: claims.recover_stale_claims(runtime),
        "receipts_applied": lambda: _apply_all_receipts(runtime),
        "nudged": lambda: runs.kick_running_runs(runtime),
        "replies_finalised": lambda: reply_jobs.finalise_incomplete_replies(ctx),
        "escalations_woken": lambda: escalation_jobs.wake_snoozed_escalations(ctx),
        "escalations_overdue": lambda: escalation_jobs.flag_overdue_escalations(ctx),
        "reply_summary": lambda: send_daily_summary(runtime),
        "audit_purged": lambda: _purge_audit(runtime),
        "receipts_purged": lambda: _purge_receipts(runtime),
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


async def _advance_journeys(runtime: Runtime) -> int:
    counts = await journeys.advance_journeys(runtime, runtime.clock())
    return sum(counts.values())


async def _purge_audit(runtime: Runtime) -> int:
    retention = timedelta(days=runtime.settings.audit_retention_days)
    return await audit.purge_before(runtime.clock() - retention)


async def on_worker_start(runtime: Runtime) -> None:
    """What a worker does before its first job, and again when a lost dependency is back:
    write what an outage left, settle what a dead predecessor left, restart the runs."""
    await record_leftovers(runtime)
    await claims.recover_stale_claims(runtime)
    await apply_receipts({"runtime": runtime})
    await runs.kick_running_runs(runtime)
    # The reply model trains at first use: before the first reply, not during it.
    await warm_up()


FUNCTIONS = {
    f.__name__: f
    for f in (dispatch_run, dispatch_lane, apply_receipts, tick, *reply_jobs.FUNCTIONS)
}

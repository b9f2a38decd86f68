"""The job functions, the same under arq and in process: each takes ctx (with the Runtime) and ids.

Every job is idempotent: arq runs a job again after its worker was killed, and the
in-process runner after a restart through the periodic `tick`.
"""

from __future__ import annotations

import logging
from typing import Any

from campaigns import campaign_service, dispatch
from campaigns.runtime import Runtime
from workers import reply_jobs

__all__ = ["FUNCTIONS", "dispatch_lane", "dispatch_run", "tick"]

log = logging.getLogger(__name__)


def runtime_of(ctx: dict[str, Any]) -> Runtime:
    return ctx["runtime"]


async def dispatch_run(ctx: dict[str, Any], run_id: int) -> int:
    """Start (or restart) the sending of a run: enqueues its lanes."""
    return await dispatch.start_run_dispatch(runtime_of(ctx), run_id)


async def dispatch_lane(
    ctx: dict[str, Any], run_id: int, slot: int, chain: str, bounces: int
) -> str:
    """Send a run's messages batch after batch for a while (see campaigns.dispatch)."""
    reason = await dispatch.run_lane(runtime_of(ctx), run_id, slot, chain, bounces)
    log.debug("run %s lane %s stopped: %s", run_id, slot, reason)
    return reason


async def tick(ctx: dict[str, Any]) -> dict[str, int]:
    """Every minute: start due runs, settle dead workers' claims, nudge unfinished runs."""
    runtime = runtime_of(ctx)
    started = await campaign_service.start_due_runs(runtime, runtime.clock())
    recovered = await dispatch.recover_stale_claims(runtime)
    nudged = await dispatch.kick_running_runs(runtime)
    return {"started": started, "recovered": recovered, "nudged": len(nudged)}


async def on_worker_start(runtime: Runtime) -> None:
    """What a worker does before its first job: settle what a dead predecessor left."""
    await dispatch.recover_stale_claims(runtime)
    await dispatch.kick_running_runs(runtime)


FUNCTIONS = {
    f.__name__: f
    for f in (dispatch_run, dispatch_lane, tick, *reply_jobs.FUNCTIONS, *reply_jobs.CRON)
}

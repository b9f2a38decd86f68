"""arq worker settings: job functions, the minute tick, start-up and shut-down of the Runtime.

`campaigns worker` builds its worker (`workers.resilience.ResilientWorker`) from
`worker_options()`, with the Settings the command read once. Start-up waits for the
database with back-off rather than failing; the worker's recovery steps run when
PostgreSQL or Redis comes back after an outage.
"""

from __future__ import annotations

import logging
from typing import Any

from arq import cron, func
from arq.connections import RedisSettings

from campaigns.core.db import close_db, init_db
from campaigns.core.runtime import Runtime
from campaigns.core.settings import Settings
from campaigns.dispatch.outages import QuietDuringOutage, wait_for_database
from workers import jobs, reply_jobs
from workers.resilience import process_state
from workers.runtime import build_runtime, close_runtime

__all__ = ["on_shutdown", "on_startup", "worker_options"]

log = logging.getLogger(__name__)

# A lane works for DispatchConfig.lane_budget (60 s) then hands over: this leaves room for
# its last batch. arq re-runs a killed worker's jobs once this timeout + 10 s has passed.
LANE_TIMEOUT = 150
# On SIGTERM running lanes are told to stop after their batch and get this long to do so.
SHUTDOWN_WAIT = 30


async def on_startup(ctx: dict[str, Any]) -> None:
    """Connect, build the Runtime, settle what predecessors left. Safe to run again: arq's
    start-up is tried again when Redis fails under it."""
    runtime: Runtime | None = ctx.get("runtime")
    if runtime is None:
        settings: Settings = ctx["settings"]
        await init_db(settings.database_url)
        state = process_state(ctx)
        logging.getLogger("asyncpg.pool").addFilter(QuietDuringOutage(state.database_outage))
        await wait_for_database(state.database_outage)
        worker = ctx.get("worker")
        if worker is not None:
            # Lanes stop after their current batch once arq stops picking jobs (SIGTERM).
            state.stopping = lambda: not worker.allow_pick_jobs
        runtime = await build_runtime(settings, state=state)
        ctx["runtime"] = runtime
        # A dependency back after an outage: claims, receipts and runs are looked at now,
        # not at the next minute's tick.
        state.database_outage.on_recovery(lambda: _recover(runtime))
        state.redis_outage.on_recovery(lambda: _recover(runtime))
    if not ctx.get("started"):
        await runtime.coordination.start()
        ctx["started"] = True
        try:
            await jobs.on_worker_start(runtime)
        except Exception:
            log.exception("worker start-up steps failed: the minute's tick will redo them")
    log.info("worker %s ready", runtime.coordination.worker_id)


async def _recover(runtime: Runtime) -> None:
    await runtime.coordination.beat()
    await jobs.on_worker_start(runtime)


async def on_shutdown(ctx: dict[str, Any]) -> None:
    runtime = ctx.pop("runtime", None)
    if runtime is not None:
        await close_runtime(runtime)
    await close_db()


def _functions() -> list[Any]:
    return [
        func(jobs.dispatch_run, keep_result=0, max_tries=5, timeout=60),
        func(jobs.dispatch_lane, keep_result=0, max_tries=3, timeout=LANE_TIMEOUT),
        func(jobs.apply_receipts, keep_result=0, max_tries=3, timeout=60),
        func(reply_jobs.process_reply, keep_result=0, max_tries=5, timeout=60),
    ]


def _cron_jobs(queue_name: str) -> list[Any]:
    # second=0: once a minute (second=None would mean every second); unique across workers.
    # arq's job ids are global to Redis: the queue name keeps deployments apart.
    return [
        cron(
            jobs.tick,
            name=f"cron:{queue_name}:tick",
            second=0,
            unique=True,
            keep_result=0,
            timeout=60,
            max_tries=1,
        )
    ]


def _redis_settings(url: str) -> RedisSettings:
    redis_settings = RedisSettings.from_dsn(url)
    redis_settings.conn_retries = 0
    redis_settings.conn_timeout = 2
    return redis_settings


def worker_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for arq's Worker (campaigns worker adds ctx and signals)."""
    if not settings.redis_url:
        raise ValueError("a Redis URL is required")
    return {
        "functions": _functions(),
        "cron_jobs": _cron_jobs(settings.queue_name),
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        # No retries of arq's own at connection: the worker retries with back-off, forever.
        "redis_settings": _redis_settings(settings.redis_url),
        "queue_name": settings.queue_name,
        "max_jobs": 20,
        "poll_delay": 0.2,
        "keep_result": 0,
        "job_completion_wait": SHUTDOWN_WAIT,
        "ctx": {"settings": settings},
    }

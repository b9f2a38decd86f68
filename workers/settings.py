"""arq worker settings: job functions, the minute tick, start-up and shut-down of the Runtime.

`campaigns worker` builds its arq Worker from `worker_options()`, with the Settings the
command read once.
"""

from __future__ import annotations

import logging
from typing import Any

from arq import cron, func
from arq.connections import RedisSettings

from campaigns.core.db import close_db, init_db
from campaigns.core.settings import Settings
from workers import jobs, reply_jobs
from workers.runtime import build_runtime, close_runtime

__all__ = ["on_shutdown", "on_startup", "worker_options"]

log = logging.getLogger(__name__)

# A lane works for DispatchConfig.lane_budget (60 s) then hands over: this leaves room for
# its last batch. arq re-runs a killed worker's jobs once this timeout + 10 s has passed.
LANE_TIMEOUT = 150
# On SIGTERM running lanes are told to stop after their batch and get this long to do so.
SHUTDOWN_WAIT = 30


async def on_startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    await init_db(settings.database_url)
    runtime = await build_runtime(settings)
    worker = ctx.get("worker")
    if worker is not None:
        # Lanes stop after their current batch once arq stops picking jobs (SIGTERM).
        runtime.extras["stopping"] = lambda: not worker.allow_pick_jobs
    await runtime.coordination.start()  # type: ignore[union-attr]
    ctx["runtime"] = runtime
    await jobs.on_worker_start(runtime)
    log.info("worker %s ready", runtime.coordination.worker_id)  # type: ignore[union-attr]


async def on_shutdown(ctx: dict[str, Any]) -> None:
    runtime = ctx.pop("runtime", None)
    if runtime is not None:
        await close_runtime(runtime)
    await close_db()


def _functions() -> list[Any]:
    return [
        func(jobs.dispatch_run, keep_result=0, max_tries=5, timeout=60),
        func(jobs.dispatch_lane, keep_result=0, max_tries=3, timeout=LANE_TIMEOUT),
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


def worker_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for arq's Worker (campaigns worker adds ctx and signals)."""
    if not settings.redis_url:
        raise ValueError("a Redis URL is required")
    return {
        "functions": _functions(),
        "cron_jobs": _cron_jobs(settings.queue_name),
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "queue_name": settings.queue_name,
        "max_jobs": 20,
        "poll_delay": 0.2,
        "keep_result": 0,
        "job_completion_wait": SHUTDOWN_WAIT,
        "ctx": {"settings": settings},
    }

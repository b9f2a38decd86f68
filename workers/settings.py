"""arq worker settings: job functions, the minute tick, start-up and shut-down of the Runtime.

`campaigns worker` builds its Worker from `worker_options()`; `WorkerSettings` is the
same for arq's own command line (`arq workers.settings.WorkerSettings`).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from arq import cron, func
from arq.connections import RedisSettings

from campaigns.core.db import close_db, init_db
from campaigns.core.settings import Settings, load_settings
from workers import jobs, reply_jobs
from workers.arq_queue import DEFAULT_QUEUE_NAME
from workers.runtime import WorkerTuning, build_runtime, close_runtime

__all__ = ["WorkerSettings", "on_shutdown", "on_startup", "worker_options"]

log = logging.getLogger(__name__)

# A lane works for DispatchConfig.lane_budget (60 s) then hands over: this leaves room for
# its last batch. arq re-runs a killed worker's jobs once this timeout + 10 s has passed.
LANE_TIMEOUT = 150
# On SIGTERM running lanes are told to stop after their batch and get this long to do so.
SHUTDOWN_WAIT = 30


async def on_startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx.get("settings") or load_settings()
    await init_db(settings.database_url)
    runtime = await build_runtime(settings, tuning=ctx.get("tuning"))
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


def worker_options(settings: Settings, tuning: WorkerTuning) -> dict[str, Any]:
    """Keyword arguments for arq's Worker (campaigns worker adds ctx and signals)."""
    if not settings.redis_url:
        raise ValueError("a Redis URL is required")
    return {
        "functions": _functions(),
        "cron_jobs": _cron_jobs(tuning.queue_name),
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "queue_name": tuning.queue_name,
        "max_jobs": 20,
        "poll_delay": 0.2,
        "keep_result": 0,
        "job_completion_wait": SHUTDOWN_WAIT,
        "ctx": {"settings": settings, "tuning": tuning},
    }


class WorkerSettings:
    """For `arq workers.settings.WorkerSettings`; reads the environment at import."""

    queue_name = os.environ.get("CAMPAIGNS_QUEUE_NAME", DEFAULT_QUEUE_NAME)
    functions = _functions()
    cron_jobs = _cron_jobs(queue_name)
    on_startup = on_startup
    on_shutdown = on_shutdown
    redis_settings = RedisSettings.from_dsn(
        os.environ.get("CAMPAIGNS_REDIS_URL", "redis://127.0.0.1:6379")
    )
    max_jobs = 20
    poll_delay = 0.2
    keep_result = 0
    job_completion_wait = SHUTDOWN_WAIT

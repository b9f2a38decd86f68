"""The job queue and its runner inside one process, for `campaigns serve` without Redis.

It runs the very job functions arq runs (workers.jobs), as asyncio tasks: a job id is
refused while a job with that id waits or runs, `defer_by` delays a job, and a loop
calls `tick` every minute. Nothing survives a restart: `tick` (run at start-up too)
finds unfinished runs again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["InProcessQueue"]

log = logging.getLogger(__name__)

JobFunction = Callable[..., Awaitable[Any]]


@dataclass
class _Job:
    function: str
    args: tuple[Any, ...]
    job_id: str
    defer_by: float
    task: asyncio.Task[Any] | None = field(default=None, repr=False)


class InProcessQueue:
    """A JobQueue whose jobs run here once `start()` was called (before: they wait)."""

    def __init__(
        self,
        functions: Mapping[str, JobFunction],
        ctx: dict[str, Any] | None = None,
        *,
        tick_every: float = 60.0,
    ) -> None:
        self.functions = functions
        self.ctx: dict[str, Any] = ctx if ctx is not None else {}
        self.tick_every = tick_every
        self._jobs: dict[str, _Job] = {}
        self._ids = itertools.count(1)
        self._started = False
        self._ticker: asyncio.Task[None] | None = None
        self.completed: list[tuple[str, tuple[Any, ...], Any]] = []  # for tests and diagnostics
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def pending(self) -> list[tuple[str, tuple[Any, ...], str, float]]:
        """Jobs waiting or running: (function, args, job id, defer_by)."""
        return [(j.function, j.args, j.job_id, j.defer_by) for j in self._jobs.values()]

    async def enqueue(
        self,
        function: str,
        *args: Any,
        job_id: str | None = None,
        defer_by: float | None = None,
    ) -> bool:
        if function not in self.functions:
            raise ValueError(f"unknown job function {function!r}")
        job_id = job_id or f"job-{next(self._ids)}"
        if job_id in self._jobs:
            return False
        job = _Job(function, args, job_id, max(0.0, defer_by or 0.0))
        self._jobs[job_id] = job
        self._idle.clear()
        if self._started:
            self._launch(job)
        return True

    def _launch(self, job: _Job) -> None:
        job.task = asyncio.create_task(self._run(job), name=f"job:{job.job_id}")

    async def _run(self, job: _Job) -> None:
        try:
            if job.defer_by > 0:
                await asyncio.sleep(job.defer_by)
            result = await self.functions[job.function](self.ctx, *job.args)
            self.completed.append((job.function, job.args, result))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job %s (%s) failed", job.job_id, job.function)
        finally:
            self._jobs.pop(job.job_id, None)
            if not self._jobs:
                self._idle.set()

    async def start(self, *, tick: bool = True) -> None:
        """Run the waiting jobs and those to come; with `tick`, call `tick` now and every minute."""
        self._started = True
        for job in list(self._jobs.values()):
            if job.task is None:
                self._launch(job)
        if tick and "tick" in self.functions:
            self._ticker = asyncio.create_task(self._tick_forever(), name="inprocess-tick")

    async def _tick_forever(self) -> None:
        while True:
            try:
                await self.functions["tick"](self.ctx)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("periodic tick failed")
            await asyncio.sleep(self.tick_every)

    async def run_until_idle(self, *, limit: float = 30.0, max_defer: float = 5.0) -> None:
        """For tests: start, then wait until no job waits or runs.

        Jobs deferred by more than `max_defer` seconds are dropped and listed in
        `self.dropped` (a test looks at them instead of waiting).
        """
        self.dropped: list[tuple[str, tuple[Any, ...], str, float]] = []
        if not self._started:
            await self.start(tick=False)

        async def settle() -> None:
            while self._jobs:
                for job in list(self._jobs.values()):
                    if job.defer_by > max_defer and job.task is not None and not job.task.done():
                        self.dropped.append((job.function, job.args, job.job_id, job.defer_by))
                        job.task.cancel()
                        self._jobs.pop(job.job_id, None)
                tasks = [j.task for j in self._jobs.values() if j.task is not None]
                if tasks:
                    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                else:
                    await asyncio.sleep(0)

        await asyncio.wait_for(settle(), limit)

    async def close(self) -> None:
        tasks = [j.task for j in self._jobs.values() if j.task is not None]
        if self._ticker is not None:
            tasks.append(self._ticker)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._jobs.clear()
        self._started = False

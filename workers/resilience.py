"""An arq worker that outlives Redis and PostgreSQL outages; only a signal ends it.

arq's own worker gives up when Redis cannot be reached at start-up (after five tries)
and when a poll fails (the poll loop raises and `campaigns worker` exits). This one
connects with back-off, and a failed poll makes it wait and try again: jobs already
running go on (they meet the outage themselves: lanes wait for the database, give back
what they cannot send). Each outage is logged when it starts and when it ends. When
Redis is back, what it may have lost (queued jobs, leases, heartbeats) is rebuilt:
the worker beats, writes what an outage left unwritten, settles dead workers' claims
and restarts every unfinished run, without waiting for the minute's tick.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from arq.connections import create_pool
from arq.worker import Worker

from campaigns.core.outage import Outage
from campaigns.core.process_state import ProcessState
from campaigns.dispatch.outages import database_unavailable

__all__ = ["ResilientWorker", "process_state"]

log = logging.getLogger(__name__)


def process_state(ctx: dict[str, Any]) -> ProcessState:
    """The worker's ProcessState, kept in arq's ctx: made before the Runtime, since the
    worker meets outages while it connects, and handed to the Runtime once built."""
    state = ctx.get("state")
    if not isinstance(state, ProcessState):
        state = ctx["state"] = ProcessState()
    return state


def is_redis_error(exc: BaseException) -> bool:
    current: BaseException | None = exc
    seen = 0
    while current is not None and seen < 10:
        if type(current).__module__.startswith("redis"):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


class ResilientWorker(Worker):
    """arq's Worker, connecting with back-off and surviving failed polls."""

    @property
    def outage(self) -> Outage:
        return process_state(self.ctx).redis_outage

    async def main(self) -> None:
        while True:
            while self._pool is None:
                try:
                    self._pool = await create_pool(
                        self.redis_settings,
                        job_deserializer=self.job_deserializer,
                        job_serializer=self.job_serializer,
                        default_queue_name=self.queue_name,
                        expires_extra_ms=self.expires_extra_ms,
                    )
                except Exception as exc:
                    self.outage.failed(exc)
                    await asyncio.sleep(self.outage.delay())
            try:
                await super().main()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Start-up met an outage (its steps are safe to run again): wait, retry.
                if is_redis_error(exc):
                    outage = self.outage
                elif database_unavailable(exc):
                    outage = process_state(self.ctx).database_outage
                else:
                    raise
                outage.failed(exc)
                await asyncio.sleep(outage.delay())

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not is_redis_error(exc):
                log.exception("worker: poll failed, going on")
                await asyncio.sleep(1.0)
                return
            self.outage.failed(exc)
            await asyncio.sleep(self.outage.delay())
            return
        if self.outage.down:
            await self.outage.recovered()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        # arq takes a slot of its semaphore before its Redis pipeline and does not give it
        # back when Redis fails there: a few outages would leave no slot to run jobs.
        for job_id in job_ids:
            counted = self.job_counter
            try:
                await super().start_jobs([job_id])
            except BaseException:
                if self.job_counter > counted and job_id.decode() not in self.tasks:
                    self.job_counter -= 1
                    self.sem.release()
                raise

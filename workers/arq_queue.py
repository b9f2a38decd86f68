"""The JobQueue on arq: enqueue a job function by name on the deployment's Redis queue."""

from __future__ import annotations

from typing import Any

from arq.connections import ArqRedis, RedisSettings, create_pool

__all__ = ["DEFAULT_QUEUE_NAME", "ArqQueue"]

DEFAULT_QUEUE_NAME = "campaigns:queue"


class ArqQueue:
    """Jobs for `campaigns worker` processes; a job id is refused while it waits or runs."""

    def __init__(self, pool: ArqRedis, queue_name: str = DEFAULT_QUEUE_NAME) -> None:
        self.pool = pool
        self.queue_name = queue_name

    @classmethod
    async def connect(cls, redis_url: str, queue_name: str = DEFAULT_QUEUE_NAME) -> ArqQueue:
        pool = await create_pool(RedisSettings.from_dsn(redis_url), default_queue_name=queue_name)
        return cls(pool, queue_name)

    async def enqueue(
        self,
        function: str,
        *args: Any,
        job_id: str | None = None,
        defer_by: float | None = None,
    ) -> bool:
        job = await self.pool.enqueue_job(
            function,
            *args,
            # arq's job keys are global to the Redis database: scope ours by queue.
            _job_id=f"{self.queue_name}:{job_id}" if job_id else None,
            _queue_name=self.queue_name,
            _defer_by=defer_by if defer_by and defer_by > 0 else None,
        )
        return job is not None

    async def close(self) -> None:
        await self.pool.aclose()

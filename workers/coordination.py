"""Worker heartbeats and leases: how dispatch tells a dead worker's claims from a busy one's.

With Redis every worker process writes a heartbeat key that expires after a TTL and
refreshes it in the background; a claim whose worker has no heartbeat any more belongs
to a dead process (SIGKILL, lost machine). Leases (one per lane of a run) keep the number
of lanes bounded however often a run is nudged. In-process mode (no Redis) has a single
worker: only this process is alive, and leases live in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["MemoryCoordination", "RedisCoordination", "new_worker_id"]

log = logging.getLogger(__name__)

# Take the lease when free or already ours; renew its expiry either way.
_ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def new_worker_id() -> str:
    """Host, pid and a random suffix: unique even when a pid is reused after a restart."""
    host = socket.gethostname().split(".")[0][:24]
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


class RedisCoordination:
    """Heartbeats and leases in Redis, under a prefix (the queue name) per deployment."""

    def __init__(self, redis: Redis, prefix: str, worker_id: str, ttl: float) -> None:
        self.worker_id = worker_id
        self._redis = redis
        self._prefix = prefix
        self._ttl_ms = max(1000, int(ttl * 1000))
        self._acquire = redis.register_script(_ACQUIRE)
        self._release = redis.register_script(_RELEASE)
        self._task: asyncio.Task[None] | None = None

    def _worker_key(self, worker_id: str) -> str:
        return f"{self._prefix}:worker:{worker_id}"

    @property
    def _members_key(self) -> str:
        return f"{self._prefix}:workers"

    async def beat(self) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(self._worker_key(self.worker_id), str(time.time()), px=self._ttl_ms)
            pipe.sadd(self._members_key, self.worker_id)
            await pipe.execute()

    async def start(self) -> None:
        """Beat now, then every third of the TTL until stop()."""
        await self.beat()
        self._task = asyncio.create_task(self._beat_forever(), name="worker-heartbeat")

    async def _beat_forever(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self._ttl_ms / 3000)
            try:
                await self.beat()
            except Exception as exc:  # Redis away for a moment: try again next time
                if not failing:  # once per outage, not at every beat
                    log.warning("heartbeat of %s failed: %s", self.worker_id, type(exc).__name__)
                failing = True
            else:
                if failing:
                    log.info("heartbeat of %s back", self.worker_id)
                failing = False

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self._redis.delete(self._worker_key(self.worker_id))
            await cast(Awaitable[int], self._redis.srem(self._members_key, self.worker_id))

    async def alive(self, worker_ids: set[str]) -> set[str]:
        ordered = sorted(worker_ids)
        if not ordered:
            return set()
        async with self._redis.pipeline(transaction=False) as pipe:
            for worker_id in ordered:
                pipe.exists(self._worker_key(worker_id))
            answers = await pipe.execute()
        return {worker_id for worker_id, found in zip(ordered, answers, strict=True) if found}

    async def workers(self) -> int:
        members = {
            m.decode() if isinstance(m, bytes) else str(m)
            for m in await cast(Awaitable[set[Any]], self._redis.smembers(self._members_key))
        }
        living = await self.alive(members)
        dead = members - living
        if dead:
            await cast(Awaitable[int], self._redis.srem(self._members_key, *sorted(dead)))
        return max(1, len(living))

    async def acquire(self, key: str, token: str, ttl: float) -> bool:
        taken = await self._acquire(
            keys=[f"{self._prefix}:lease:{key}"], args=[token, max(1, int(ttl * 1000))]
        )
        return bool(taken)

    async def release(self, key: str, token: str) -> None:
        await self._release(keys=[f"{self._prefix}:lease:{key}"], args=[token])


class MemoryCoordination:
    """One process, no Redis: only this worker is alive; leases in a dict."""

    def __init__(self, worker_id: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.worker_id = worker_id
        self._leases: dict[str, tuple[str, float]] = {}
        self._clock = clock

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def beat(self) -> None:
        return None

    async def alive(self, worker_ids: set[str]) -> set[str]:
        return worker_ids & {self.worker_id}

    async def workers(self) -> int:
        return 1

    async def acquire(self, key: str, token: str, ttl: float) -> bool:
        now = self._clock()
        holder = self._leases.get(key)
        if holder is not None and holder[0] != token and holder[1] > now:
            return False
        self._leases[key] = (token, now + ttl)
        return True

    async def release(self, key: str, token: str) -> None:
        holder = self._leases.get(key)
        if holder is not None and holder[0] == token:
            del self._leases[key]

"""The sending rate limit, counted in SMS parts and shared by every worker.

Both limiters implement GCRA (the generic cell rate algorithm, a token bucket kept as
one timestamp): each reservation pushes a "theoretical arrival time" forward by
``units / rate`` seconds and tells the caller how long to wait so that at most
``burst`` units are ever ahead of the steady rate. A reservation is final: a caller
that waits the returned delay then sends, without asking again.

``RedisRateLimiter`` keeps that timestamp in Redis and computes in one Lua script
with Redis's own clock (``TIME``), so processes on several machines share one limit
even when their clocks disagree. ``LocalRateLimiter`` does the same in process, for
the in-process mode without Redis. A rate of 0 means no limit.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "DEFAULT_KEY",
    "LocalRateLimiter",
    "RateLimiter",
    "RedisRateLimiter",
    "make_rate_limiter",
]

DEFAULT_KEY = "campaigns:rate:sms"

# KEYS[1]: the key holding the theoretical arrival time (TAT), seconds as a string.
# ARGV: emission interval (seconds per unit), burst (units), units to reserve.
# Returns the wait in seconds as a string (Lua numbers would be truncated to integers).
_GCRA_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local units = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then
  tat = now
end
local new_tat = tat + units * interval
local wait = new_tat - burst * interval - now
if wait < 0 then
  wait = 0
end
local ttl_ms = math.ceil((new_tat - now) * 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.6f', new_tat), 'PX', ttl_ms)
return string.format('%.6f', wait)
"""


class RateLimiter(Protocol):
    """What dispatch needs from a rate limit."""

    async def reserve(self, units: int = 1) -> float:
        """Reserve ``units`` (SMS parts) and return the seconds to wait before sending."""
        ...

    async def wait(self, units: int = 1) -> None:
        """Reserve ``units`` and sleep until they may be sent."""
        ...


def _check(rate_per_second: float, burst: float | None) -> tuple[float, float]:
    if rate_per_second < 0:
        raise ValueError("le débit d'envoi doit être positif ou nul (0 = sans limite)")
    # One unit of burst by default: sends are spread evenly, the safest choice against
    # a provider that counts requests per second (Vonage: 30/s per key).
    burst_units = 1.0 if burst is None else float(burst)
    if burst_units < 1:
        raise ValueError("la rafale (burst) doit valoir au moins 1 unité")
    return float(rate_per_second), burst_units


def _check_units(units: int) -> None:
    if units < 0:
        raise ValueError("units must be zero or positive")


class _WaitOnReserve:
    async def reserve(self, units: int = 1) -> float:
        raise NotImplementedError

    async def wait(self, units: int = 1) -> None:
        delay = await self.reserve(units)
        if delay > 0:
            await asyncio.sleep(delay)


class LocalRateLimiter(_WaitOnReserve):
    """GCRA in process memory; shared by the tasks and threads of one process only."""

    def __init__(
        self,
        rate_per_second: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate_per_second, self.burst = _check(rate_per_second, burst)
        self._clock = clock
        self._tat = float("-inf")
        self._lock = threading.Lock()

    async def reserve(self, units: int = 1) -> float:
        return self.reserve_now(units)

    def reserve_now(self, units: int = 1) -> float:
        """The synchronous core of ``reserve``, for callers outside an event loop."""
        _check_units(units)
        if self.rate_per_second == 0 or units == 0:
            return 0.0
        interval = 1.0 / self.rate_per_second
        with self._lock:
            now = self._clock()
            tat = max(self._tat, now)
            self._tat = tat + units * interval
            return max(0.0, self._tat - self.burst * interval - now)


class RedisRateLimiter(_WaitOnReserve):
    """GCRA kept under one Redis key, shared by every process using that key."""

    def __init__(
        self,
        redis: Redis,
        key: str = DEFAULT_KEY,
        rate_per_second: float = 0.0,
        burst: float | None = None,
    ) -> None:
        self.rate_per_second, self.burst = _check(rate_per_second, burst)
        self.key = key
        self._redis = redis
        # register_script sends EVALSHA and falls back to EVAL after a server restart.
        self._script = redis.register_script(_GCRA_SCRIPT)

    async def reserve(self, units: int = 1) -> float:
        _check_units(units)
        if self.rate_per_second == 0 or units == 0:
            return 0.0
        interval = 1.0 / self.rate_per_second
        reply = await self._script(
            keys=[self.key], args=[repr(interval), repr(self.burst), str(units)]
        )
        return float(reply)


def make_rate_limiter(
    rate_per_second: float,
    *,
    redis: Redis | None = None,
    key: str = DEFAULT_KEY,
    burst: float | None = None,
) -> RateLimiter:
    """The shared limiter when a Redis client is given, else the in-process one."""
    if redis is None:
        return LocalRateLimiter(rate_per_second, burst)
    return RedisRateLimiter(redis, key, rate_per_second, burst)

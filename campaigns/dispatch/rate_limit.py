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

Back-off: when the provider says to slow down (a throttle) or cannot be reached,
``penalise`` pushes the shared timestamp forward (every worker waits) and, for a
throttle, halves the rate for ``SLOW_HOLD`` seconds after the last throttle (down to a
tenth). Without a rate (0) there is no shared timestamp: the pause is this process's.
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
SLOW_HOLD = 15.0  # seconds a halved rate lasts after the last throttle
MIN_FACTOR = 0.1  # the rate is never slowed below a tenth

# KEYS[1]: the key holding the theoretical arrival time (TAT), seconds as a string.
# ARGV: emission interval (seconds per unit), burst (units), units to reserve.
# Returns the wait in seconds as a string (Lua numbers would be truncated to integers).
_GCRA_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local units = tonumber(ARGV[3])
local factor = tonumber(redis.call('GET', KEYS[2]) or '1') or 1
interval = interval / factor
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

# KEYS[1]: the TAT, KEYS[2]: the slow-down factor. ARGV: pause (s), slow (0/1), min factor,
# hold (ms). Pushes the TAT to now + pause at least; halves the factor when slow.
_PENALISE_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local pause = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now + pause then
  tat = now + pause
end
redis.call('SET', KEYS[1], string.format('%.6f', tat), 'PX', math.ceil((tat - now) * 1000) + 1000)
local factor = tonumber(redis.call('GET', KEYS[2]) or '1') or 1
if tonumber(ARGV[2]) == 1 then
  factor = math.max(tonumber(ARGV[3]), factor / 2)
  redis.call('SET', KEYS[2], string.format('%.4f', factor), 'PX', tonumber(ARGV[4]))
end
return string.format('%.4f', factor)
"""


class RateLimiter(Protocol):
    """What dispatch needs from a rate limit."""

    async def reserve(self, units: int = 1) -> float:
        """Reserve ``units`` (SMS parts) and return the seconds to wait before sending."""
        ...

    async def wait(self, units: int = 1) -> None:
        """Reserve ``units`` and sleep until they may be sent."""
        ...

    async def penalise(self, pause: float, *, slow: bool = False) -> None:
        """Nothing leaves for ``pause`` seconds; ``slow``: the provider throttled us."""
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
    _pause_until = float("-inf")  # monotonic; the pause of a limiter without a rate

    async def reserve(self, units: int = 1) -> float:
        raise NotImplementedError

    def _unlimited_wait(self) -> float:
        return max(0.0, self._pause_until - time.monotonic())

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
        self._factor = 1.0
        self._slow_until = float("-inf")
        self._lock = threading.Lock()

    async def reserve(self, units: int = 1) -> float:
        return self.reserve_now(units)

    def reserve_now(self, units: int = 1) -> float:
        """The synchronous core of ``reserve``, for callers outside an event loop."""
        _check_units(units)
        if units == 0:
            return 0.0
        if self.rate_per_second == 0:
            return max(0.0, self._pause_until - self._clock())
        with self._lock:
            now = self._clock()
            if now >= self._slow_until:
                self._factor = 1.0
            interval = 1.0 / (self.rate_per_second * self._factor)
            tat = max(self._tat, now)
            self._tat = tat + units * interval
            return max(0.0, self._tat - self.burst * interval - now)

    async def penalise(self, pause: float, *, slow: bool = False) -> None:
        with self._lock:
            now = self._clock()
            self._pause_until = max(self._pause_until, now + pause)
            self._tat = max(self._tat, now + pause)
            if slow:
                self._factor = max(MIN_FACTOR, self._factor / 2)
                self._slow_until = now + SLOW_HOLD

    @property
    def factor(self) -> float:
        return self._factor if self._clock() < self._slow_until else 1.0


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
        self.slow_key = f"{key}:slow"
        self._redis = redis
        # register_script sends EVALSHA and falls back to EVAL after a server restart.
        self._script = redis.register_script(_GCRA_SCRIPT)
        self._penalise = redis.register_script(_PENALISE_SCRIPT)

    async def reserve(self, units: int = 1) -> float:
        _check_units(units)
        if units == 0:
            return 0.0
        if self.rate_per_second == 0:
            return self._unlimited_wait()
        interval = 1.0 / self.rate_per_second
        reply = await self._script(
            keys=[self.key, self.slow_key], args=[repr(interval), repr(self.burst), str(units)]
        )
        return float(reply)

    async def penalise(self, pause: float, *, slow: bool = False) -> None:
        self._pause_until = max(self._pause_until, time.monotonic() + pause)
        if self.rate_per_second == 0:
            return
        await self._penalise(
            keys=[self.key, self.slow_key],
            args=[
                repr(max(0.0, pause)),
                "1" if slow else "0",
                repr(MIN_FACTOR),
                str(int(SLOW_HOLD * 1000)),
            ],
        )


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

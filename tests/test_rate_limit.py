"""The shared sending rate limit: GCRA in process and in Redis, counted in SMS parts."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis
import redis.asyncio as aioredis

from campaigns.dispatch.rate_limit import (
    LocalRateLimiter,
    RedisRateLimiter,
    make_rate_limiter,
)
from tests.services import REDIS_URL, require_redis


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- in process, on a fixed clock ---------------------------------------------------------


async def test_local_burst_then_steady_rate() -> None:
    """With burst 5 at 20/s, five units go at once, then one every 50 ms."""
    limiter = LocalRateLimiter(20, burst=5, clock=FakeClock())
    waits = [await limiter.reserve(1) for _ in range(8)]
    assert waits == pytest.approx([0, 0, 0, 0, 0, 0.05, 0.10, 0.15])


async def test_local_units_are_parts_and_idle_time_refills() -> None:
    """A 3-part SMS reserves 3 units; after a quiet second the burst is back."""
    clock = FakeClock()
    limiter = LocalRateLimiter(20, burst=3, clock=clock)
    assert await limiter.reserve(3) == 0
    assert await limiter.reserve(3) == pytest.approx(0.15)
    assert await limiter.reserve(1) == pytest.approx(0.20)
    clock.now += 1.0
    assert await limiter.reserve(3) == 0
    # More parts than the burst still go, after the wait their surplus costs.
    assert await limiter.reserve(10) == pytest.approx(0.5)


async def test_local_last_of_100_units_waits_for_the_rate() -> None:
    """100 units at 20/s with burst 10: the last one is scheduled (100 - 10) / 20 s later."""
    limiter = LocalRateLimiter(20, burst=10, clock=FakeClock())
    waits = [await limiter.reserve(1) for _ in range(100)]
    assert waits == sorted(waits)
    assert waits[-1] == pytest.approx(90 / 20)


async def test_local_rate_zero_is_unlimited() -> None:
    """Rate 0 never waits."""
    limiter = LocalRateLimiter(0, clock=FakeClock())
    assert [await limiter.reserve(3) for _ in range(1000)] == [0.0] * 1000


def test_bad_settings() -> None:
    """Negative rates, sub-unit bursts and negative units are refused."""
    with pytest.raises(ValueError):
        LocalRateLimiter(-1)
    with pytest.raises(ValueError):
        LocalRateLimiter(10, burst=0.5)
    with pytest.raises(ValueError):
        LocalRateLimiter(10).reserve_now(-1)


async def test_wait_sleeps_the_reserved_delay() -> None:
    """wait() sleeps what reserve() would have returned (short, real clock)."""
    limiter = LocalRateLimiter(50, burst=1)
    started = time.monotonic()
    for _ in range(6):
        await limiter.wait(1)
    assert time.monotonic() - started >= 5 / 50 * 0.9


# --- in Redis, shared by several workers --------------------------------------------------


@pytest.fixture
async def redis_key() -> AsyncIterator[tuple[aioredis.Redis, aioredis.Redis, str]]:
    """Two connections (two workers) and a unique key, deleted afterwards."""
    require_redis()
    first = aioredis.from_url(REDIS_URL)
    second = aioredis.from_url(REDIS_URL)
    key = f"test:campaigns:rate:{uuid.uuid4().hex}"
    try:
        yield first, second, key
    finally:
        await first.delete(key)
        await first.aclose()
        await second.aclose()


@pytest.mark.redis
async def test_two_workers_share_one_limit(redis_key) -> None:
    """Two limiters on two connections split 20 units/s: the last of 100 waits ~(100-5)/20."""
    first, second, key = redis_key
    workers = [RedisRateLimiter(first, key, 20, burst=5), RedisRateLimiter(second, key, 20, 5)]
    started = time.monotonic()
    waits = [await workers[index % 2].reserve(1) for index in range(100)]
    elapsed = time.monotonic() - started
    assert waits[:5] == [0.0] * 5
    assert waits[5] > 0
    assert all(later >= earlier - 0.01 for earlier, later in itertools.pairwise(waits))
    assert 95 / 20 - elapsed - 0.01 <= waits[-1] <= 95 / 20 + 0.01


@pytest.mark.redis
async def test_redis_counts_parts(redis_key) -> None:
    """A 3-part SMS pushes the schedule three units further than a 1-part one."""
    first, _second, key = redis_key
    limiter = RedisRateLimiter(first, key, 20, burst=1)
    assert await limiter.reserve(1) == 0
    after_one = await limiter.reserve(1)
    after_three = await limiter.reserve(3)
    after_next = await limiter.reserve(1)
    assert after_one == pytest.approx(0.05, abs=0.01)
    assert after_three - after_one == pytest.approx(0.15, abs=0.01)
    assert after_next - after_three == pytest.approx(0.05, abs=0.01)
    assert await first.pttl(key) > 0  # the key expires once idle


async def test_redis_rate_zero_never_calls_redis() -> None:
    """Rate 0 answers without Redis: this client points at a closed port."""
    unreachable = aioredis.from_url("redis://127.0.0.1:1/15", socket_connect_timeout=0.2)
    limiter = make_rate_limiter(0, redis=unreachable, key="test:campaigns:rate:unused")
    assert isinstance(limiter, RedisRateLimiter)
    assert [await limiter.reserve(3) for _ in range(100)] == [0.0] * 100
    await limiter.wait(3)
    await unreachable.aclose()


def test_factory_without_redis_is_local() -> None:
    """No Redis URL: the in-process limiter."""
    limiter = make_rate_limiter(30)
    assert isinstance(limiter, LocalRateLimiter)
    assert limiter.rate_per_second == 30


# Each worker process waits for a common start instant, then sends 60 parts as 1-, 2- and
# 3-part messages, waiting as told, and prints the (time, parts) of each send.
_WORKER = textwrap.dedent(
    """
    import asyncio, json, sys, time
    import redis.asyncio as aioredis
    from campaigns.dispatch.rate_limit import RedisRateLimiter

    async def main(url, key, start_at):
        client = aioredis.from_url(url)
        limiter = RedisRateLimiter(client, key, 100, burst=10)
        await client.ping()
        await asyncio.sleep(max(0.0, start_at - time.time()))
        sent = []
        for parts in [1, 2, 3] * 10:
            await limiter.wait(parts)
            sent.append((time.time(), parts))
        await client.aclose()
        print(json.dumps(sent))

    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
    """
)


@pytest.mark.redis
@pytest.mark.slow
def test_two_processes_share_the_rate() -> None:
    """Two processes sending 60 parts each at 100/s (burst 10) take >= 1 s together and
    never send more than rate + burst parts in any one-second window."""
    require_redis()
    key = f"test:campaigns:rate:{uuid.uuid4().hex}"
    start_at = time.time() + 1.0
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, REDIS_URL, key, repr(start_at)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        outputs = [process.communicate(timeout=10)[0] for process in processes]
    finally:
        with redis.Redis.from_url(REDIS_URL) as client:
            client.delete(key)
    assert [process.returncode for process in processes] == [0, 0]
    sends = sorted(tuple(item) for output in outputs for item in json.loads(output))
    assert sum(parts for _, parts in sends) == 120

    span = sends[-1][0] - sends[0][0]
    assert span >= (120 - 10) / 100 * 0.9
    busiest = max(
        sum(parts for at, parts in sends if start <= at < start + 1.0) for start, _ in sends
    )
    # GCRA bound: rate + burst per second; one message's parts of slack for timer jitter.
    assert busiest <= 100 + 10 + 3, busiest
    assert span < 3.0

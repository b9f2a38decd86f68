"""Redis killed and restarted, PostgreSQL stopped with `-m immediate` and restarted, mid-run.

The workers wait and reconnect (one log line per outage, not one per retry), never exit;
sending resumes without waiting for the minute's tick; receipts posted while the
database is away are answered 503 and land when Vonage (the emulator) retries.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.dispatch_support import launch_campaign
from tests.faults.harness import Scenario

pytestmark = [pytest.mark.slow, pytest.mark.fault_timeout(100)]

PEOPLE = 500


async def test_redis_killed_and_restarted(scenario: Scenario) -> None:
    s = scenario
    assert s.runtime is not None
    s.workers.start(2)
    campaign_id = (await launch_campaign(s.runtime, PEOPLE))["campaign_id"]
    await s.accepted_at_least(120)
    s.redis.kill()  # every queued job, lease and heartbeat is lost with it
    await asyncio.sleep(3)
    s.redis.start()
    restarted = time.monotonic()
    await s.accepted_at_least(200, seconds=30)
    # Sending resumed on its own, not at the next minute's tick.
    assert time.monotonic() - restarted < 30
    await s.settled(campaign_id, 70)
    counts = await s.check_nobody_twice_nobody_left(campaign_id)
    assert counts == {"delivered": PEOPLE}
    assert len(s.workers.alive()) == 2, s.workers.logs()[-4000:]
    for i in range(2):
        log = (s.root / f"worker-{i}.log").read_text()
        assert log.count("Redis injoignable") <= 2, log[-3000:]  # once per outage
    # Only a signal ends a worker, and it ends cleanly.
    s.workers.stop_all(wait=20)
    assert [p.returncode for p in s.workers.processes] == [0, 0], s.workers.logs()[-3000:]


async def test_postgres_stopped_immediately_and_restarted(scenario: Scenario) -> None:
    s = scenario
    assert s.runtime is not None
    s.workers.start(2)
    campaign_id = (await launch_campaign(s.runtime, PEOPLE))["campaign_id"]
    await s.accepted_at_least(120)
    s.cluster.stop("immediate")
    await asyncio.sleep(4)
    s.cluster.start()
    restarted = time.monotonic()
    await s.accepted_at_least(220, seconds=30)
    assert time.monotonic() - restarted < 30
    await s.settled(campaign_id, 70)
    counts = await s.check_nobody_twice_nobody_left(campaign_id)
    assert counts == {"delivered": PEOPLE}
    assert len(s.workers.alive()) == 2, s.workers.logs()[-4000:]
    # Receipts that met the outage were refused with a 503, then landed when retried.
    await s.emulator.drain_receipts()
    assert s.emulator.dlr_failures == 0
    assert s.emulator.dlr_refusals.get(503), s.emulator.dlr_refusals  # refused, then retried
    assert not s.deadlocks()
    for i in range(2):
        log = (s.root / f"worker-{i}.log").read_text()
        assert log.count("PostgreSQL injoignable") <= 2, log[-3000:]


@pytest.mark.fault_timeout(70)
async def test_a_worker_started_before_its_dependencies_waits_for_them(scenario: Scenario) -> None:
    s = scenario
    assert s.runtime is not None
    s.redis.kill()
    s.cluster.stop("fast")
    [worker] = s.workers.start(1)

    async def waiting() -> bool:
        return "Redis injoignable" in (s.root / "worker-0.log").read_text()

    await s.wait_for(waiting, 30, "the worker to say it waits for Redis")
    await asyncio.sleep(2)  # a few tries more
    assert worker.poll() is None, s.workers.logs()[-3000:]  # waiting, not exited
    s.cluster.start()
    s.redis.start()

    async def queue_answers() -> bool:
        try:
            return bool(await s.runtime.queue.pool.ping())  # type: ignore[union-attr]
        except Exception:
            return False  # the client reconnects on its next command

    await s.wait_for(queue_answers, 10, "Redis to answer the web side")
    campaign_id = (await launch_campaign(s.runtime, 60))["campaign_id"]
    await s.settled(campaign_id, 40)
    assert await s.check_nobody_twice_nobody_left(campaign_id) == {"delivered": 60}
    log = (s.root / "worker-0.log").read_text()
    assert log.count("Redis injoignable") == 1, log[-3000:]

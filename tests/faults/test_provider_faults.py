"""The provider misbehaving: throttling plus a 20 s outage; receipts racing dispatch.

Throttles slow the shared rate and spend no attempt; refused connections during the
outage go back to the queue (never unconfirmed: nothing left); receipts arriving while
the same batches are being recorded cause no deadlock, in any log.
"""

from __future__ import annotations

import asyncio

import pytest

from campaigns.models import Message, MessageStatus
from tests.dispatch_support import launch_campaign
from tests.faults.harness import Scenario

pytestmark = [pytest.mark.slow]

M = MessageStatus


@pytest.mark.fault_timeout(120)
async def test_throttling_and_a_twenty_second_outage(scenario: Scenario) -> None:
    s = scenario
    assert s.runtime is not None
    people = 300
    s.workers.env.update(CAMPAIGNS_SEND_RATE="60")
    s.emulator.update(throttle_per_second=35)  # below our rate: it throttles
    s.workers.start(2)
    campaign_id = (await launch_campaign(s.runtime, people))["campaign_id"]
    await s.accepted_at_least(80)
    await s.emulator.go_down()
    await asyncio.sleep(20)
    assert not [m for m in await Message.filter(campaign_id=campaign_id, status=M.UNCONFIRMED)]
    await s.emulator.come_back()
    await s.settled(campaign_id, 80)
    counts = await s.check_nobody_twice_nobody_left(campaign_id)
    assert counts == {"delivered": people}
    throttled = [r for r in s.emulator.received if r["status"] == "1"]
    assert throttled, "the emulator never throttled: the scenario proved nothing"
    attempts = await Message.filter(campaign_id=campaign_id).values_list("attempts", flat=True)
    # Throttles spend no attempt; the outage's refused connections spend one each at most
    # every back-off: nobody ran out of attempts.
    assert max(attempts) <= 2


@pytest.mark.fault_timeout(100)
async def test_receipts_racing_dispatch_cause_no_deadlock(scenario: Scenario) -> None:
    s = scenario
    assert s.runtime is not None
    people = 1200
    s.workers.env.update(CAMPAIGNS_SEND_RATE="0", CAMPAIGNS_SEND_CONCURRENCY="16")
    s.emulator.update(dlr_delay_ms=0)  # a receipt lands while its batch is being recorded
    s.workers.start(2)
    campaign_id = (await launch_campaign(s.runtime, people))["campaign_id"]
    await s.settled(campaign_id, 80)
    counts = await s.check_nobody_twice_nobody_left(campaign_id)
    assert counts == {"delivered": people}
    assert s.deadlocks() == []
    await s.emulator.drain_receipts()
    assert s.emulator.dlr_failures == 0 and s.emulator.dlr_sent == people

"""Pause, resume and cancel while real workers send: sending stops within a group, goes on
where it stopped, and what is cancelled never leaves."""

from __future__ import annotations

import asyncio

import pytest

from campaigns.campaign import lifecycle
from tests.dispatch_support import ACTOR, launch_campaign
from tests.faults.harness import Scenario, status_counts

pytestmark = [pytest.mark.slow, pytest.mark.fault_timeout(90)]

PEOPLE = 600


async def test_pause_resume_then_cancel_mid_run(scenario: Scenario) -> None:
    s = scenario
    assert s.runtime is not None
    s.workers.env.update(CAMPAIGNS_SEND_RATE="60")
    s.workers.start(2)
    campaign_id = (await launch_campaign(s.runtime, PEOPLE))["campaign_id"]
    await s.accepted_at_least(100)

    await lifecycle.pause(campaign_id, actor=ACTOR)
    await asyncio.sleep(1.5)  # a lane looks at the status at least every second
    paused_at = sum(s.emulator.delivered_to().values())
    await asyncio.sleep(2)
    assert sum(s.emulator.delivered_to().values()) == paused_at, "sent while paused"
    counts = await status_counts(campaign_id)
    assert not counts.get("sending"), counts

    await lifecycle.resume(campaign_id, actor=ACTOR, runtime=s.runtime)
    await s.accepted_at_least(paused_at + 120, seconds=30)

    await lifecycle.cancel(campaign_id, actor=ACTOR, now=s.runtime.clock())
    await asyncio.sleep(1.5)
    cancelled_at = sum(s.emulator.delivered_to().values())
    counts = await s.settled(campaign_id, 40)
    assert sum(s.emulator.delivered_to().values()) == cancelled_at, "sent after cancelling"
    final = await s.check_nobody_twice_nobody_left(campaign_id, cancelled_ok=True)
    assert final == counts
    assert set(final) == {"delivered", "cancelled"}
    assert final["delivered"] == cancelled_at and final["cancelled"] == PEOPLE - cancelled_at

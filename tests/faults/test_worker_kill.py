"""SIGKILL of a worker while its calls are at the provider: nobody twice, nobody left.

Only the calls in flight may be unconfirmed (each group is recorded before the next is
handed over), their receipts settle them; what the dead worker had claimed but not yet
handed over goes back to the queue and is sent once by the others.
"""

from __future__ import annotations

import signal
import subprocess
from collections import defaultdict

import pytest

from campaigns.models import Message, MessageStatus
from tests.dispatch_support import launch_campaign
from tests.faults.harness import Scenario

pytestmark = [pytest.mark.slow, pytest.mark.fault_timeout(100)]

M = MessageStatus
PEOPLE = 300


async def test_a_worker_killed_mid_batch_loses_only_its_calls_in_flight(
    scenario: Scenario,
) -> None:
    s = scenario
    assert s.runtime is not None
    s.emulator.update(latency_ms=300)  # calls stay at the provider long enough to be caught
    s.workers.start(2)
    campaign_id = (await launch_campaign(s.runtime, PEOPLE))["campaign_id"]
    await s.accepted_at_least(60)
    caught: dict[str, set[int]] = {}

    async def calls_at_the_provider() -> subprocess.Popen[bytes] | None:
        """A worker all of whose handed-over claims are at the emulator, unanswered."""
        rows = await Message.filter(
            campaign_id=campaign_id, status=M.SENDING, handed_at__isnull=False
        ).values_list("id", "claimed_by")
        pending = {r["client-ref"] for r in s.emulator.received if r["status"] is None}
        by_worker: dict[str, set[int]] = defaultdict(set)
        for mid, claimed_by in rows:
            by_worker[claimed_by].add(mid)
        for claimed_by, ids in by_worker.items():
            victim = s.worker_of(claimed_by)
            if victim is not None and all(str(mid) in pending for mid in ids):
                caught["in_flight"] = ids
                caught["worker"] = {victim.pid}
                return victim
        return None

    victim = await s.wait_for(calls_at_the_provider, 40, "a worker with calls in flight")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    not_handed = set(
        await Message.filter(
            campaign_id=campaign_id, status=M.SENDING, handed_at__isnull=True
        ).values_list("id", flat=True)
    )
    s.workers.start(1)  # restarted, as the compose file's restart policy does

    counts = await s.settled(campaign_id, 70)
    final = await s.check_nobody_twice_nobody_left(campaign_id)
    assert final == counts == {"delivered": PEOPLE}
    rows = dict(await Message.filter(campaign_id=campaign_id).values_list("id", "attempts"))
    # What it had claimed but not handed over was sent once, its attempt given back.
    assert all(rows[mid] == 1 for mid in not_handed)
    assert caught["in_flight"] and len(s.workers.alive()) == 2

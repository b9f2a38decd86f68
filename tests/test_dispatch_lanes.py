"""Dispatch lanes: batch sizes, deadlines, leases, rates, the window closing, next occurrences."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

import pytest
from redis.asyncio import Redis

from campaigns.campaign import launch as campaign_launch
from campaigns.core.runtime import Runtime
from campaigns.dispatch import lanes, recording, runs
from campaigns.dispatch.lanes import batch_limit
from campaigns.dispatch.rate_limit import LocalRateLimiter, RedisRateLimiter
from campaigns.models import Campaign, CampaignRun, CampaignStatus, Message, MessageStatus
from campaigns.rules.send_window import parse_send_window
from providers.base import SmsRequest
from providers.console import read_outbox
from tests.dispatch_runs import (
    GROUPED_RATE,
    dispatch_runtime,
    paris,
    prepared_lane,
    queue,
    sent_ids,
)
from tests.dispatch_support import (
    ACTOR,
    T_MONDAY,
    Clock,
    ProbeSms,
    counts,
    create_campaign,
    launch_campaign,
    make_run,
)
from workers.coordination import MemoryCoordination

M = MessageStatus


@pytest.fixture
def rt(runtime: Runtime) -> Runtime:
    """The test runtime on a fixed Monday morning, without a rate limit, small batches."""
    return dispatch_runtime(runtime)


@pytest.mark.parametrize(
    ("batch_size", "rate", "lanes", "avg_segments", "expected"),
    [
        (200, 0, 4, 1.0, 200),  # no limit: the configured size
        (200, 30, 1, 1.0, 200),  # 300 in ten seconds
        (200, 30, 4, 1.0, 75),  # the rate is shared by the run's lanes
        (200, 30, 4, 3.0, 25),  # three parts a message
        (200, 0.5, 4, 2.0, 1),  # never below one
        (500, 1000, 2, 1.0, 500),
    ],
)
def test_a_batch_holds_about_ten_seconds_of_sending(
    batch_size: int, rate: float, lanes: int, avg_segments: float, expected: int
) -> None:
    assert batch_limit(batch_size, rate, lanes, avg_segments) == expected


async def test_batches_are_sized_by_the_rate_and_the_run_segments(rt: Runtime, db: str) -> None:
    rt.rate_limiter = LocalRateLimiter(3)
    rt.dispatch.batch_size = 200
    _, run = await make_run(20, segments=2)
    lane = await prepared_lane(rt, run.id)
    assert lane._batch_limit() == 15  # 3 parts/s x 10 s / 2 parts


async def test_no_group_is_handed_over_after_the_lanes_deadline(rt: Runtime, db: str) -> None:
    rt.rate_limiter = LocalRateLimiter(GROUPED_RATE)  # groups at 0, 0.12, 0.24, 0.36 s
    campaign, run = await make_run(10)
    lane = await prepared_lane(rt, run.id)
    lane.deadline = time.monotonic() + 0.2
    result = await lane.step()
    assert result is not None and result.reason == "budget"
    by_status = await counts(campaign.id)
    assert set(by_status) == {"submitted", "queued"} and by_status["submitted"] in (3, 6)
    queued = await Message.filter(run_id=run.id, status=M.QUEUED)
    assert {(m.attempts, m.claimed_by) for m in queued} == {(0, None)}
    assert len(sent_ids(rt)) == by_status["submitted"]


async def test_a_lane_that_lost_its_lease_stops(rt: Runtime, db: str) -> None:
    """Its lease expired (a long stall) and another lane took the slot: this one stops."""
    moment = [0.0]
    coordination = MemoryCoordination(rt.coordination.worker_id, clock=lambda: moment[0])  # type: ignore[union-attr]
    rt.coordination = coordination
    campaign, run = await make_run(25)
    lease = f"run:{run.id}:lane:0"

    async def stall(req: SmsRequest) -> None:
        if moment[0] == 0.0:
            moment[0] = 1000.0
            assert await coordination.acquire(lease, "another-chain", 30)

    rt.sms = ProbeSms(rt.sms, stall)  # type: ignore[arg-type]
    assert await runs.run_lane(rt, run.id, 0, "this-chain", 0) == "lost"
    assert await counts(campaign.id) == {"submitted": 10, "queued": 15}


async def test_the_window_closing_mid_batch_stops_the_handing_over(rt: Runtime, db: str) -> None:
    clock = Clock(paris(2026, 3, 14, 18, 59, 59))  # Saturday, one second before closing
    rt.clock = clock
    rt.send_window = parse_send_window("mon-sat 09:00-19:00", "Europe/Paris", "FR")
    rt.rate_limiter = LocalRateLimiter(GROUPED_RATE)
    campaign, run = await make_run(10)

    async def tick(req: SmsRequest) -> None:
        clock.now = paris(2026, 3, 14, 19, 0)

    rt.sms = ProbeSms(rt.sms, tick)  # type: ignore[arg-type]
    lane = await prepared_lane(rt, run.id)
    assert await lane.step() == lanes.LaneResult("window", paris(2026, 3, 16, 9, 0))
    assert await counts(campaign.id) == {"submitted": 3, "queued": 7}
    queued = await Message.filter(run_id=run.id, status=M.QUEUED)
    assert {(m.attempts, m.claimed_by, m.handed_at) for m in queued} == {(0, None, None)}


async def test_claims_taken_away_before_their_turn_are_not_sent(rt: Runtime, db: str) -> None:
    """What the next occurrence cancels while a lane holds it claimed never leaves."""
    rt.rate_limiter = LocalRateLimiter(GROUPED_RATE)
    campaign, run = await make_run(10)

    async def supersede(req: SmsRequest) -> None:
        await Message.filter(run_id=run.id, status=M.SENDING, handed_at__isnull=True).update(
            status=M.CANCELLED
        )

    probe = ProbeSms(rt.sms, supersede)  # type: ignore[arg-type]
    rt.sms = probe
    lane = await prepared_lane(rt, run.id)
    assert await lane.step() is None
    assert await counts(campaign.id) == {"submitted": 3, "cancelled": 7}
    assert len(probe.calls) == 3


async def test_a_rate_limiter_failure_leaves_the_batch_queued(rt: Runtime, db: str) -> None:
    """Redis away while reserving: nothing left, so nothing is unconfirmed; all retried."""
    unreachable = Redis.from_url("redis://127.0.0.1:1/15", socket_connect_timeout=0.2)
    rt.rate_limiter = RedisRateLimiter(unreachable, "test:campaigns:rate:unreachable", 30)
    campaign, run = await make_run(5)
    lane = await prepared_lane(rt, run.id)
    result = await lane.step()
    await unreachable.aclose()
    assert result is not None and result.reason == "waiting"
    assert await counts(campaign.id) == {"queued": 5}
    rows = await Message.filter(run_id=run.id)
    assert {(m.attempts, m.claimed_by) for m in rows} == {(0, None)}
    assert sent_ids(rt) == Counter()


async def test_email_does_not_spend_the_sms_rate(rt: Runtime, db: str) -> None:
    sms_limiter = LocalRateLimiter(1)  # one SMS part a second
    rt.rate_limiter = sms_limiter
    started = time.monotonic()
    launched = await launch_campaign(
        rt, 6, channel="email", body="Bonjour {{ person.first_name }}", subject="Nouvelles"
    )
    await queue(rt).run_until_idle()
    assert await counts(launched["campaign_id"]) == {"submitted": 6}
    assert time.monotonic() - started < 3  # at one a second: five seconds at least
    assert sms_limiter.reserve_now(1) == 0.0  # untouched: the next SMS part may leave now


async def test_the_next_occurrence_cancels_what_the_previous_one_has_not_sent(
    rt: Runtime, db: str
) -> None:
    """A weekly campaign whose run did not finish (window, pause): the next week's run
    replaces what is still queued, so nobody gets both occurrences together."""
    campaign_id = await create_campaign(rt, 5)
    await Campaign.filter(id=campaign_id).update(recurrence_days=7)
    launched = await campaign_launch.launch(campaign_id, actor=ACTOR, runtime=rt)
    first_run = launched["run"]["id"]
    rt.dispatch.batch_size = 2
    lane = await prepared_lane(rt, first_run)
    assert await lane.step() is None  # two sent, three still queued

    rt.clock.now = T_MONDAY + timedelta(days=7)  # type: ignore[attr-defined]
    assert await campaign_launch.start_due_runs(rt, rt.clock()) == 1
    first = await Message.filter(run_id=first_run)
    assert Counter(m.status for m in first) == {M.SUBMITTED: 2, M.CANCELLED: 3}
    assert {m.error for m in first if m.status == M.CANCELLED} == {"remplacé par l'envoi suivant"}
    second = await CampaignRun.get(campaign_id=campaign_id, number=2)
    assert await Message.filter(run_id=second.id, status=M.QUEUED).count() == 5

    rt.dispatch.batch_size = 10
    await queue(rt).run_until_idle()
    assert await Message.filter(run_id=second.id, status=M.SUBMITTED).count() == 5
    assert await Message.filter(run_id=first_run, status=M.QUEUED).count() == 0
    received = Counter(r["to"] for r in read_outbox(rt.settings.outbox_dir, limit=100))
    assert sorted(received.values()) == [1, 1, 1, 2, 2]  # the two a week apart
    assert (await Campaign.get(id=campaign_id)).status == CampaignStatus.SCHEDULED
    assert (await CampaignRun.get(id=first_run)).completed_at is not None


@pytest.mark.parametrize(
    ("attempts", "retry_after", "low", "high"),
    [
        (1, None, 7.5, 15),
        (2, None, 15, 30),
        (3, None, 30, 60),
        (10, None, 450, 900),
        (1, 1.0, 1, 1),
    ],
)
def test_backoff_is_exponential_with_jitter_and_capped(
    attempts: int, retry_after: float | None, low: float, high: float
) -> None:
    for _ in range(20):
        assert low <= recording.backoff(attempts, 15, 900, retry_after) <= high

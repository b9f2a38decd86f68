"""Outcomes as they come: each group committed before the next leaves; only what may have
reached the provider is unconfirmed; throttles slow the shared rate and spend no attempt."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from campaigns.core.runtime import Runtime
from campaigns.dispatch.rate_limit import LocalRateLimiter
from campaigns.models import Message, MessageStatus
from providers.base import SmsRequest
from providers.emulator import EmulatorConfig, VonageEmulator
from providers.vonage.client import VonageSmsProvider
from tests.dispatch_runs import GROUPED_RATE, dispatch_runtime, prepared_lane
from tests.dispatch_support import ProbeSms, counts, make_run

M = MessageStatus


@pytest.fixture
def rt(runtime: Runtime) -> Runtime:
    return dispatch_runtime(runtime)


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("outcomes-tls")


@pytest.fixture
async def emulator(cert_dir: Path) -> AsyncIterator[VonageEmulator]:
    emu = VonageEmulator(EmulatorConfig(api_key="k", api_secret="s"), cert_dir=cert_dir)
    await emu.start()
    yield emu
    await emu.stop()


@pytest.fixture
async def vonage_rt(rt: Runtime, emulator: VonageEmulator) -> AsyncIterator[Runtime]:
    await rt.sms.close()  # type: ignore[union-attr]
    rt.sms = VonageSmsProvider(
        "k", "s", rest_host=emulator.rest_host, ca_file=str(emulator.ca_file), timeout=3
    )
    yield rt


async def test_each_group_is_recorded_before_the_next_is_handed_over(rt: Runtime, db: str) -> None:
    """A crash loses at most the calls in flight: when a group is called, every earlier
    group's outcome is already committed."""
    rt.rate_limiter = LocalRateLimiter(GROUPED_RATE)  # groups of 3
    campaign, run = await make_run(9)
    seen: list[dict[str, int]] = []

    async def before(req: SmsRequest) -> None:
        seen.append(await counts(campaign.id))

    rt.sms = ProbeSms(rt.sms, before)  # type: ignore[arg-type]
    lane = await prepared_lane(rt, run.id)
    assert await lane.step() is None
    submitted_before = [c.get("submitted", 0) for c in seen]
    assert submitted_before == [0, 0, 0, 3, 3, 3, 6, 6, 6]
    assert await counts(campaign.id) == {"submitted": 9}


async def test_without_a_rate_the_next_group_is_handed_over_in_the_same_commit(
    rt: Runtime, db: str
) -> None:
    """All groups due at once: each commit records a group and hands the next one over."""
    rt.dispatch.concurrency = 3
    campaign, run = await make_run(9)
    seen: list[tuple[int, int]] = []

    async def before(req: SmsRequest) -> None:
        counted = await counts(campaign.id)
        handed = await Message.filter(
            run_id=run.id, status=M.SENDING, handed_at__isnull=False
        ).count()
        seen.append((counted.get("submitted", 0), handed))

    rt.sms = ProbeSms(rt.sms, before)  # type: ignore[arg-type]
    lane = await prepared_lane(rt, run.id)
    assert await lane.step() is None
    assert [s for s, _ in seen] == [0, 0, 0, 3, 3, 3, 6, 6, 6]
    assert all(handed <= 3 for _, handed in seen)  # never more than one group in flight
    assert await counts(campaign.id) == {"submitted": 9}


async def test_a_throttle_spends_no_attempt_and_slows_the_shared_rate(
    vonage_rt: Runtime, emulator: VonageEmulator, db: str
) -> None:
    rt = vonage_rt
    limiter = LocalRateLimiter(1000)
    rt.rate_limiter = limiter
    rt.dispatch.concurrency = 4
    _, run = await make_run(12)
    emulator.update(throttle_per_second=2)
    lane = await prepared_lane(rt, run.id)
    assert await lane.step() is None  # the batch stops at the first throttled group
    rows = await Message.filter(run_id=run.id)
    queued = [m for m in rows if m.status == M.QUEUED]
    submitted = [m for m in rows if m.status == M.SUBMITTED]
    assert len(submitted) == 2 and len(queued) == 10
    assert not [m for m in rows if m.status in (M.UNCONFIRMED, M.FAILED)]
    assert {(m.attempts, m.claimed_by, m.handed_at) for m in queued} == {(0, None, None)}
    throttled = [m for m in queued if m.next_attempt_at is not None]
    assert len(throttled) == 2  # the rest of the batch never left: due at once
    assert all(m.next_attempt_at == rt.clock() + timedelta(seconds=1) for m in throttled)
    assert limiter.factor == 0.5  # half the rate for a while
    assert await limiter.reserve(1) >= 0.9  # and a pause of the provider's second


async def test_an_unreachable_provider_is_not_unconfirmed(
    vonage_rt: Runtime, emulator: VonageEmulator, db: str
) -> None:
    """Refused connections: nothing left, so back to the queue, never unconfirmed, and no
    attempt spent (the lane pauses the shared rate instead)."""
    rt = vonage_rt
    rt.rate_limiter = LocalRateLimiter(1000)
    rt.dispatch.concurrency = 3
    campaign, run = await make_run(9)
    await emulator.go_down()
    lane = await prepared_lane(rt, run.id)
    assert await lane.step() is None
    rows = await Message.filter(run_id=run.id)
    assert {(m.status, m.attempts, m.claimed_by) for m in rows} == {(M.QUEUED, 0, None)}
    tried = [m for m in rows if m.next_attempt_at is not None]
    assert len(tried) == 3  # one group tried; the rest of the batch never left
    assert emulator.received == []
    assert await rt.rate_limiter.reserve(1) > 0.5  # type: ignore[union-attr]
    assert await counts(campaign.id) == {"queued": 9}
    await emulator.come_back()
    result = await rt.sms.send_sms(SmsRequest("x", "+33612345678", "CCAS", "t", False))  # type: ignore[union-attr]
    assert result.outcome == "submitted"  # the same port again


async def test_an_http_4xx_goes_back_to_the_queue(
    vonage_rt: Runtime, emulator: VonageEmulator, db: str
) -> None:
    rt = vonage_rt
    rt.dispatch.concurrency = 1
    _, run = await make_run(2)
    emulator.update(http_status_next=[401])
    lane = await prepared_lane(rt, run.id)
    assert await lane.step() is None
    first, second = await Message.filter(run_id=run.id).order_by("id")
    assert (first.status, first.attempts) == (M.QUEUED, 1)
    assert "identifiants Vonage refusés" not in (first.error or "")
    assert second.status == M.SUBMITTED


async def test_a_dropped_connection_is_unconfirmed_and_the_emulator_got_it(
    vonage_rt: Runtime, emulator: VonageEmulator, db: str
) -> None:
    rt = vonage_rt
    rt.dispatch.concurrency = 1
    _, run = await make_run(2)
    emulator.update(drop_connection_next=1)
    lane = await prepared_lane(rt, run.id)
    assert await lane.step() is None
    first = await Message.filter(run_id=run.id).order_by("id").first()
    assert first is not None and first.status == M.UNCONFIRMED
    assert [r["status"] for r in emulator.received if r["client-ref"] == str(first.id)] == [
        "dropped"
    ]

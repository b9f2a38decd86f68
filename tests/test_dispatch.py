"""Dispatch: claims, outcomes recorded in bulk, retries, pause/resume/cancel, window, recovery."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis

from campaigns.campaign import launch as campaign_launch
from campaigns.core.runtime import Runtime
from campaigns.dispatch import lanes as dispatch
from campaigns.dispatch.rate_limit import LocalRateLimiter, RedisRateLimiter
from campaigns.models import (
    Campaign,
    CampaignRun,
    CampaignStatus,
    Message,
    MessagePart,
    MessageStatus,
    OptOut,
    Person,
)
from campaigns.rules.send_window import parse_send_window
from providers.base import SmsRequest
from providers.console import read_outbox
from providers.emulator import EmulatorConfig, VonageEmulator
from providers.vonage.client import VonageSmsProvider
from tests.dispatch_support import (
    ACTOR,
    T_MONDAY,
    Clock,
    ProbeSms,
    counts,
    create_campaign,
    launch_campaign,
    make_run,
    mobile,
)
from workers.coordination import MemoryCoordination
from workers.inprocess import InProcessQueue

M = MessageStatus
PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture
def rt(runtime: Runtime) -> Runtime:
    """The test runtime on a fixed Monday morning, without a rate limit, small batches."""
    # Tortoise.init exports TIMEZONE=UTC, which Settings reads by field name: pin ours.
    runtime.settings.timezone = "Europe/Paris"
    runtime.send_window = parse_send_window(runtime.settings.send_window, "Europe/Paris", "FR")
    runtime.clock = Clock(T_MONDAY)
    runtime.rate_limiter = None
    runtime.dispatch.batch_size = 10
    return runtime


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dispatch-tls")


@pytest.fixture
async def emulator(cert_dir: Path) -> AsyncIterator[VonageEmulator]:
    emu = VonageEmulator(EmulatorConfig(api_key="k", api_secret="s"), cert_dir=cert_dir)
    await emu.start()
    yield emu
    await emu.stop()


@pytest.fixture
async def vonage_rt(rt: Runtime, emulator: VonageEmulator) -> AsyncIterator[Runtime]:
    """The runtime sending through the real SDK to the emulator."""
    await rt.sms.close()  # type: ignore[union-attr]
    rt.sms = VonageSmsProvider(
        "k", "s", rest_host=emulator.rest_host, ca_file=str(emulator.ca_file), timeout=3
    )
    yield rt


def queue(rt: Runtime) -> InProcessQueue:
    assert isinstance(rt.queue, InProcessQueue)
    return rt.queue


async def run_dispatch(rt: Runtime, run_id: int) -> InProcessQueue:
    q = queue(rt)
    await q.enqueue("dispatch_run", run_id, job_id=f"dispatch:{run_id}")
    await q.run_until_idle()
    return q


async def test_a_run_sends_each_message_once_and_completes(rt: Runtime, db: str) -> None:
    """25 messages in batches of 10: all submitted once, parts stored, campaign completed."""
    campaign, run = await make_run(25)
    await run_dispatch(rt, run.id)

    assert await counts(campaign.id) == {"submitted": 25}
    outbox = read_outbox(rt.settings.outbox_dir, limit=100)
    assert len(outbox) == 25
    assert len({r["message_id"] for r in outbox}) == 25
    assert await MessagePart.all().count() == 25
    await campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.COMPLETED
    assert (await CampaignRun.get(id=run.id)).completed_at == T_MONDAY
    contacted = await Person.filter(last_contacted_at=T_MONDAY).count()
    assert contacted == 25
    message = await Message.filter(campaign_id=campaign.id).first()
    assert message is not None
    assert (message.attempts, message.sent_at, message.claimed_by) == (
        1,
        T_MONDAY,
        rt.coordination.worker_id,  # type: ignore[union-attr]
    )


async def test_an_address_that_opted_out_after_launch_is_never_sent(rt: Runtime, db: str) -> None:
    """A STOP recorded while the message was already queued: skipped at claim time, not sent."""
    campaign, run = await make_run(5)
    await OptOut.create(address=mobile(2), channel="sms", source="reply")
    await run_dispatch(rt, run.id)

    assert await counts(campaign.id) == {"submitted": 4, "skipped": 1}
    skipped = await Message.get(campaign_id=campaign.id, status=MessageStatus.SKIPPED)
    assert (skipped.address, skipped.skip_reason) == (mobile(2), "opted_out")
    sent_to = {r["to"] for r in read_outbox(rt.settings.outbox_dir, limit=100)}
    assert mobile(2) not in sent_to
    assert len(sent_to) == 4


async def test_launched_campaign_is_sent_through_the_same_jobs(rt: Runtime, db: str) -> None:
    """The lifecycle's launch enqueues dispatch_run; the in-process runner sends it all."""
    launched = await launch_campaign(rt, 12)
    run_id = launched["run"]["id"]
    assert queue(rt).pending[0][:3] == ("dispatch_run", (run_id,), f"dispatch:{run_id}")
    await queue(rt).run_until_idle()
    assert await counts(launched["campaign_id"]) == {"submitted": 12}
    assert (await Campaign.get(id=launched["campaign_id"])).status == CampaignStatus.COMPLETED


async def test_each_outcome_is_recorded_as_such(vonage_rt: Runtime, emulator, db: str) -> None:
    """Dropped connection -> unconfirmed, 503 -> retried later, invalid number -> failed."""
    rt = vonage_rt
    rt.dispatch.concurrency = 1  # one request at a time: the emulator's faults hit in order
    campaign, run = await make_run(6)
    emulator.update(drop_connection_next=1, http_status_next=[503], fail_numbers={mobile(2)[1:]: 3})
    q = await run_dispatch(rt, run.id)

    by_address = {m.address: m for m in await Message.filter(campaign_id=campaign.id)}
    dropped, retried, invalid = by_address[mobile(0)], by_address[mobile(1)], by_address[mobile(2)]
    assert dropped.status == M.UNCONFIRMED and "connexion perdue" in (dropped.error or "")
    assert retried.status == M.QUEUED and retried.attempts == 1
    assert retried.next_attempt_at is not None and retried.next_attempt_at > T_MONDAY
    assert invalid.status == M.FAILED
    assert invalid.error == "numéro invalide (vonage:3 Invalid Parameters)"
    assert [by_address[mobile(i)].status for i in (3, 4, 5)] == [M.SUBMITTED] * 3
    assert by_address[mobile(3)].price is not None
    # The run waits for the retry: a wake-up deferred to its time, not a failure.
    assert [d[0] for d in q.dropped] == ["dispatch_run"]
    assert (await Campaign.get(id=campaign.id)).status == CampaignStatus.RUNNING

    rt.clock.now = retried.next_attempt_at + timedelta(seconds=1)  # type: ignore[attr-defined]
    await run_dispatch(rt, run.id)
    await retried.refresh_from_db()
    assert (retried.status, retried.attempts) == (M.SUBMITTED, 2)
    sent = Counter(r["client-ref"] for r in emulator.received)
    assert sent[str(dropped.id)] == 1  # the unconfirmed one is never sent again
    assert sent[str(retried.id)] == 2  # refused with a 503, then accepted
    assert (await Campaign.get(id=campaign.id)).status == CampaignStatus.COMPLETED


async def test_transient_failures_give_up_after_max_attempts(
    vonage_rt: Runtime, emulator, db: str
) -> None:
    rt = vonage_rt
    rt.dispatch.max_attempts = 2
    campaign, run = await make_run(3)
    emulator.update(fail_numbers={mobile(1)[1:]: 5})  # Vonage's internal error: retryable
    await run_dispatch(rt, run.id)
    failing = await Message.get(address=mobile(1))
    assert failing.status == M.QUEUED
    rt.clock.now = failing.next_attempt_at + timedelta(seconds=1)  # type: ignore[attr-defined]
    await run_dispatch(rt, run.id)
    await failing.refresh_from_db()
    assert failing.status == M.FAILED and failing.attempts == 2
    assert failing.error is not None
    assert failing.error.startswith("abandon après 2 tentatives : erreur interne de Vonage")
    assert await counts(campaign.id) == {"submitted": 2, "failed": 1}
    assert (await Campaign.get(id=campaign.id)).status == CampaignStatus.COMPLETED


async def test_pause_stops_within_a_batch_and_resume_goes_on(rt: Runtime, db: str) -> None:
    campaign, run = await make_run(30)
    lane = dispatch.Lane(rt, run.id)
    assert await lane.prepare()
    assert await lane.step() is None  # one batch of 10 sent
    await Campaign.filter(id=campaign.id).update(status=CampaignStatus.PAUSED)
    result = await lane.step()
    assert result is not None and result.reason == "paused"
    assert await counts(campaign.id) == {"submitted": 10, "queued": 20}

    await Campaign.filter(id=campaign.id).update(status=CampaignStatus.RUNNING)
    await run_dispatch(rt, run.id)
    assert await counts(campaign.id) == {"submitted": 30}
    outbox = read_outbox(rt.settings.outbox_dir, limit=100)
    assert sorted(Counter(r["message_id"] for r in outbox).values()) == [1] * 30


async def test_cancel_leaves_unsent_messages_cancelled(rt: Runtime, db: str) -> None:
    campaign, run = await make_run(25)
    lane = dispatch.Lane(rt, run.id)
    assert await lane.prepare()
    assert await lane.step() is None
    await Campaign.filter(id=campaign.id).update(status=CampaignStatus.CANCELLED)
    result = await lane.step()
    assert result is not None and result.reason == "cancelled"
    assert await counts(campaign.id) == {"submitted": 10, "cancelled": 15}


async def test_high_failure_rate_pauses_the_campaign_and_says_why(
    vonage_rt: Runtime, emulator, db: str
) -> None:
    rt = vonage_rt
    rt.dispatch.batch_size = 60
    rt.dispatch.concurrency = 8
    campaign, run = await make_run(80)
    emulator.update(fail_numbers={mobile(i)[1:]: 3 for i in range(0, 60, 2)})  # half of 60
    await run_dispatch(rt, run.id)
    await campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.PAUSED
    assert campaign.status_reason == ("Mise en pause automatique : 50 % d'échecs (numéro invalide)")
    assert await counts(campaign.id) == {"failed": 30, "submitted": 30, "queued": 20}


# --- the send window, with a fixed clock -------------------------------------------------------


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS).astimezone(UTC)


WINDOW_CASES = [
    # (window, now (Paris), sends a batch now?, next opening (Paris) when closed)
    ("mon-sat 09:00-19:00", paris(2026, 3, 14, 18, 59), True, None),  # Saturday 18:59
    ("mon-sat 09:00-19:00", paris(2026, 3, 14, 19, 0), False, paris(2026, 3, 16, 9, 0)),
    ("mon-sat 09:00-19:00", paris(2026, 3, 15, 12, 0), False, paris(2026, 3, 16, 9, 0)),
    ("mon-sat 09:00-19:00", paris(2026, 7, 14, 10, 0), False, paris(2026, 7, 15, 9, 0)),
    ("mon-sat 09:00-19:00", paris(2026, 3, 16, 8, 59), False, paris(2026, 3, 16, 9, 0)),
    ("always", paris(2026, 7, 14, 3, 0), True, None),
    ("always", paris(2026, 3, 15, 23, 30), True, None),
]


@pytest.mark.parametrize(("spec", "now", "sends", "opens"), WINDOW_CASES)
async def test_send_window_is_checked_before_each_batch(
    rt: Runtime, db: str, spec: str, now: datetime, sends: bool, opens: datetime | None
) -> None:
    rt.clock = Clock(now)
    rt.send_window = parse_send_window(spec, "Europe/Paris", "FR")
    campaign, run = await make_run(15)
    lane = dispatch.Lane(rt, run.id)
    assert await lane.prepare()
    result = await lane.step()
    if sends:
        assert result is None
        assert await counts(campaign.id) == {"submitted": 10, "queued": 5}
    else:
        assert result == dispatch.LaneResult("window", opens)
        assert await counts(campaign.id) == {"queued": 15}


async def test_a_run_started_saturday_evening_waits_for_monday(rt: Runtime, db: str) -> None:
    """Saturday 18:59: one batch leaves; at 19:00 the run defers itself to Monday 09:00."""
    clock = Clock(paris(2026, 3, 14, 18, 59))
    rt.clock = clock
    rt.send_window = parse_send_window("mon-sat 09:00-19:00", "Europe/Paris", "FR")
    campaign, run = await make_run(25)
    lane = dispatch.Lane(rt, run.id)
    assert await lane.prepare()
    assert await lane.step() is None
    clock.now = paris(2026, 3, 14, 19, 0, 30)
    q = await run_dispatch(rt, run.id)
    monday = paris(2026, 3, 16, 9, 0)
    assert q.dropped == [
        (
            "dispatch_run",
            (run.id,),
            f"dispatch:{run.id}:wake:{int(monday.timestamp())}",
            (monday - clock.now).total_seconds(),
        )
    ]
    assert await counts(campaign.id) == {"submitted": 10, "queued": 15}
    assert (await Campaign.get(id=campaign.id)).status == CampaignStatus.RUNNING
    clock.now = monday
    await run_dispatch(rt, run.id)
    assert await counts(campaign.id) == {"submitted": 25}


async def test_a_campaign_window_overrides_the_default(rt: Runtime, db: str) -> None:
    rt.clock = Clock(paris(2026, 3, 16, 10, 0))  # Monday 10:00
    _, run = await make_run(5, send_window="mon-fri 14:00-17:00")
    lane = dispatch.Lane(rt, run.id)
    assert await lane.prepare()
    assert await lane.step() == dispatch.LaneResult("window", paris(2026, 3, 16, 14, 0))


# --- never twice: claims and crashed workers --------------------------------------------------


async def test_a_dead_workers_claims_are_queued_again_unless_handed_over(
    rt: Runtime, db: str
) -> None:
    """Recovery: a claim never handed to the provider goes back to the queue, a handed one
    becomes unconfirmed; a live worker's claim is left alone."""
    campaign, run = await make_run(7)
    ids = sorted(await Message.filter(run_id=run.id).values_list("id", flat=True))
    me = rt.coordination.worker_id  # type: ignore[union-attr]
    dead = "dead-1234-abc"
    await Message.filter(id__in=ids[:2]).update(status=M.SENDING, claimed_by=dead, attempts=1)
    await Message.filter(id__in=ids[2:4]).update(
        status=M.SENDING, claimed_by=dead, attempts=1, handed_at=T_MONDAY
    )
    await Message.filter(id__in=ids[4:5]).update(status=M.SENDING, claimed_by=me, attempts=1)
    assert await dispatch.recover_stale_claims(rt) == 4
    assert await counts(campaign.id) == {"queued": 4, "unconfirmed": 2, "sending": 1}
    back = await Message.filter(id__in=ids[:2])
    assert [(m.status, m.claimed_by, m.attempts) for m in back] == [(M.QUEUED, None, 0)] * 2
    unconfirmed = await Message.filter(id__in=ids[2:4])
    assert all(m.status == M.UNCONFIRMED and "pas renvoyé" in (m.error or "") for m in unconfirmed)


async def test_a_dead_workers_unsent_claims_are_sent_exactly_once(rt: Runtime, db: str) -> None:
    campaign, run = await make_run(4)
    await Message.filter(run_id=run.id).update(status=M.SENDING, claimed_by="dead-1-x", attempts=1)
    await run_dispatch(rt, run.id)
    assert await counts(campaign.id) == {"submitted": 4}
    assert set(await Message.filter(run_id=run.id).values_list("attempts", flat=True)) == {1}
    outbox = read_outbox(rt.settings.outbox_dir, limit=100)
    assert sorted(Counter(r["message_id"] for r in outbox).values()) == [1] * 4
    assert (await Campaign.get(id=campaign.id)).status == CampaignStatus.COMPLETED


async def test_a_run_with_only_unconfirmed_left_completes_without_resending(
    rt: Runtime, db: str
) -> None:
    campaign, run = await make_run(4)
    await Message.filter(run_id=run.id).update(
        status=M.SENDING, claimed_by="dead-1-x", attempts=1, handed_at=T_MONDAY
    )
    await run_dispatch(rt, run.id)
    assert await counts(campaign.id) == {"unconfirmed": 4}
    assert read_outbox(rt.settings.outbox_dir) == []
    assert (await Campaign.get(id=campaign.id)).status == CampaignStatus.COMPLETED


async def test_concurrent_claims_are_disjoint(pg_db: str) -> None:
    """SKIP LOCKED: eight workers claiming at once never share a message (PostgreSQL)."""
    _, run = await make_run(200)
    batches = await asyncio.gather(
        *(dispatch.claim_batch(run.id, f"w{i}", 30, T_MONDAY) for i in range(8))
    )
    claimed = [m.id for batch in batches for m in batch]
    assert len(claimed) == len(set(claimed)) == 200
    owners = await Message.filter(run_id=run.id, status=M.SENDING).values_list("id", "claimed_by")
    by_worker = {f"w{i}": {m.id for m in batch} for i, batch in enumerate(batches)}
    assert all(mid in by_worker[owner] for mid, owner in owners)


async def test_retry_not_due_is_not_claimed(rt: Runtime, db: str) -> None:
    _, run = await make_run(3)
    first = await Message.filter(run_id=run.id).order_by("id").first()
    assert first is not None
    await Message.filter(id=first.id).update(next_attempt_at=T_MONDAY + timedelta(minutes=5))
    claimed = await dispatch.claim_batch(run.id, "w", 10, T_MONDAY)
    assert first.id not in {m.id for m in claimed} and len(claimed) == 2
    later = await dispatch.claim_batch(run.id, "w", 10, T_MONDAY + timedelta(minutes=6))
    assert [m.id for m in later] == [first.id]
    assert later[0].attempts == 1


# --- handing over: claimed is not sent ---------------------------------------------------------

# At 25 parts/s sends are planned 0.04 s apart: groups (0.1 s) of 3, starting 0.12 s apart.
GROUPED_RATE = 25


async def prepared_lane(rt: Runtime, run_id: int) -> dispatch.Lane:
    lane = dispatch.Lane(rt, run_id)
    assert await lane.prepare()
    return lane


def sent_ids(rt: Runtime) -> Counter[str]:
    return Counter(r["message_id"] for r in read_outbox(rt.settings.outbox_dir, limit=1000))


async def test_each_message_is_marked_handed_over_just_before_its_provider_call(
    rt: Runtime, db: str
) -> None:
    rt.rate_limiter = LocalRateLimiter(GROUPED_RATE)
    _, run = await make_run(10)
    seen: list[tuple[bool, int]] = []

    async def before(req: SmsRequest) -> None:
        row = await Message.get(id=int(req.message_id))
        waiting = await Message.filter(
            run_id=run.id, status=M.SENDING, handed_at__isnull=True
        ).count()
        seen.append((row.status == M.SENDING and row.handed_at == T_MONDAY, waiting))

    rt.sms = ProbeSms(rt.sms, before)  # type: ignore[arg-type]
    lane = await prepared_lane(rt, run.id)
    assert await lane.step() is None
    assert len(seen) == 10 and all(handed for handed, _ in seen)
    # Handed over group by group as their turn comes, not all at the claim.
    assert seen[0][1] == 7 and seen[-1][1] == 0
    assert sorted(sent_ids(rt).values()) == [1] * 10


async def test_a_batch_cut_off_mid_way_leaves_nothing_sending(rt: Runtime, db: str) -> None:
    """Cancelled (arq's timeout, SIGTERM) while the first group is at the provider: those
    become unconfirmed, the rest of the batch is queued again, and the run completes."""
    rt.rate_limiter = LocalRateLimiter(GROUPED_RATE)
    campaign, run = await make_run(10)
    never, first_group = asyncio.Event(), asyncio.Event()

    async def hang(req: SmsRequest) -> None:
        if len(probe.calls) == 3:
            first_group.set()
        await never.wait()  # the provider does not answer

    probe = ProbeSms(rt.sms, hang)  # type: ignore[arg-type]
    rt.sms = probe
    lane = await prepared_lane(rt, run.id)
    step = asyncio.create_task(lane.step())
    await asyncio.wait_for(first_group.wait(), 5)
    step.cancel()
    with pytest.raises(asyncio.CancelledError):
        await step
    at_provider = {int(ref) for ref in probe.calls}
    assert len(at_provider) == 3
    for m in await Message.filter(run_id=run.id):
        if m.id in at_provider:
            assert m.status == M.UNCONFIRMED
        else:
            assert (m.status, m.attempts, m.claimed_by, m.handed_at) == (M.QUEUED, 0, None, None)

    rt.sms = probe.inner
    await run_dispatch(rt, run.id)
    assert await counts(campaign.id) == {"submitted": 7, "unconfirmed": 3}
    assert (await Campaign.get(id=campaign.id)).status == CampaignStatus.COMPLETED


async def test_a_database_error_after_sending_leaves_no_claim_behind(
    rt: Runtime, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign, run = await make_run(5)

    async def lost_connection(*args: object, **kwargs: object) -> None:
        raise ConnectionError("base de données injoignable")

    monkeypatch.setattr(dispatch, "record_results", lost_connection)
    lane = await prepared_lane(rt, run.id)
    with pytest.raises(ConnectionError):
        await lane.step()
    assert await counts(campaign.id) == {"unconfirmed": 5}  # they left: never sent again
    monkeypatch.undo()
    await run_dispatch(rt, run.id)
    assert await counts(campaign.id) == {"unconfirmed": 5}
    assert sorted(sent_ids(rt).values()) == [1] * 5
    assert (await Campaign.get(id=campaign.id)).status == CampaignStatus.COMPLETED


async def test_a_lane_starting_releases_what_an_earlier_lane_of_its_process_left(
    rt: Runtime, db: str
) -> None:
    """A clean-up that failed (the database was away) is redone by the next lane here."""
    campaign, run = await make_run(4)
    me = rt.coordination.worker_id  # type: ignore[union-attr]
    ids = sorted(await Message.filter(run_id=run.id).values_list("id", flat=True))
    await Message.filter(id__in=ids[:3]).update(status=M.SENDING, claimed_by=me, attempts=1)
    await Message.filter(id=ids[0]).update(handed_at=T_MONDAY)
    await run_dispatch(rt, run.id)
    assert await counts(campaign.id) == {"submitted": 3, "unconfirmed": 1}
    assert str(ids[0]) not in sent_ids(rt)


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
    assert dispatch.batch_limit(batch_size, rate, lanes, avg_segments) == expected


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
    assert await dispatch.run_lane(rt, run.id, 0, "this-chain", 0) == "lost"
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
    assert await lane.step() == dispatch.LaneResult("window", paris(2026, 3, 16, 9, 0))
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


# --- the in-process queue ---------------------------------------------------------------------


async def test_inprocess_queue_refuses_a_job_id_while_it_waits(rt: Runtime, db: str) -> None:
    q = queue(rt)
    assert await q.enqueue("dispatch_run", 1, job_id="dispatch:1")
    assert not await q.enqueue("dispatch_run", 1, job_id="dispatch:1")
    await q.run_until_idle()
    assert await q.enqueue("dispatch_run", 1, job_id="dispatch:1")  # free again once done


async def test_tick_nudges_unfinished_runs(rt: Runtime, db: str) -> None:
    campaign, _ = await make_run(5)
    from workers.jobs import tick

    report = await tick({"runtime": rt})
    assert {k: report[k] for k in ("started", "recovered", "nudged")} == {
        "started": 0,
        "recovered": 0,
        "nudged": 1,
    }
    await queue(rt).run_until_idle()
    assert await counts(campaign.id) == {"submitted": 5}


FAILURE_TEXTS = [
    ("vonage:7 Number Barred", "numéro bloqué"),
    (
        "vonage:partial 1/2 9 Partner Quota Violation",
        "envoi partiel (1/2 parties) : quota Vonage dépassé",
    ),
    ("vonage:http-401", "identifiants Vonage refusés"),
    ("vonage:http-503", "Vonage indisponible"),
    ("vonage:read-timeout", "pas de réponse de Vonage"),
    ("smtp:550 mailbox unavailable", "adresse refusée par le serveur de messagerie"),
    ("smtp:451 try later", "serveur de messagerie temporairement indisponible"),
    (None, "erreur du fournisseur"),
]


@pytest.mark.parametrize(("reason", "text"), FAILURE_TEXTS)
def test_failure_reasons_read_in_french(reason: str | None, text: str) -> None:
    assert dispatch.describe_failure(reason) == text


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
        assert low <= dispatch.backoff(attempts, 15, 900, retry_after) <= high

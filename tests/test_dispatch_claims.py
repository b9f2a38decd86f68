"""Dispatch never sends twice: claims, crashed workers, handing over just before the call."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest

from campaigns.core.runtime import Runtime
from campaigns.dispatch import claims, handover, lanes
from campaigns.dispatch.rate_limit import LocalRateLimiter
from campaigns.models import Campaign, CampaignStatus, Message, MessageStatus
from providers.base import Outcome, SendResult, SmsRequest
from providers.console import read_outbox
from tests.dispatch_runs import (
    GROUPED_RATE,
    dispatch_runtime,
    prepared_lane,
    run_dispatch,
    sent_ids,
)
from tests.dispatch_support import T_MONDAY, ProbeSms, counts, make_run

M = MessageStatus


@pytest.fixture
def rt(runtime: Runtime) -> Runtime:
    """The test runtime on a fixed Monday morning, without a rate limit, small batches."""
    return dispatch_runtime(runtime)


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
    assert await claims.recover_stale_claims(rt) == 4
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
        *(claims.claim_batch(run.id, f"w{i}", 30, T_MONDAY) for i in range(8))
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
    claimed = await claims.claim_batch(run.id, "w", 10, T_MONDAY)
    assert first.id not in {m.id for m in claimed} and len(claimed) == 2
    later = await claims.claim_batch(run.id, "w", 10, T_MONDAY + timedelta(minutes=6))
    assert [m.id for m in later] == [first.id]
    assert later[0].attempts == 1


# --- handing over: claimed is not sent ---------------------------------------------------------

# At 25 parts/s sends are planned 0.04 s apart: groups (0.1 s) of 3, starting 0.12 s apart.


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


async def test_a_bug_while_recording_leaves_no_claim_behind(
    rt: Runtime, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not an outage: the outcomes cannot be written, so what was called may have left."""
    campaign, run = await make_run(5)

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("bogue")

    monkeypatch.setattr(handover, "record_and_hand", broken)
    monkeypatch.setattr(lanes, "record_results", broken)
    lane = await prepared_lane(rt, run.id)
    with pytest.raises(RuntimeError):
        await lane.step()
    assert await counts(campaign.id) == {"unconfirmed": 5}  # they left: never sent again
    monkeypatch.undo()
    await run_dispatch(rt, run.id)
    assert await counts(campaign.id) == {"unconfirmed": 5}
    assert sorted(sent_ids(rt).values()) == [1] * 5
    assert (await Campaign.get(id=campaign.id)).status == CampaignStatus.COMPLETED


async def test_outcomes_known_during_a_database_outage_are_written_when_it_is_back(
    rt: Runtime, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database lost while recording: the lane waits for it, then writes what it knows
    (submitted), rather than calling the messages unconfirmed."""
    campaign, run = await make_run(5)
    real = handover.record_and_hand
    failures = [ConnectionRefusedError(111, "Connect call failed")] * 2

    async def flaky(*args: object, **kwargs: object) -> object:
        if failures:
            raise failures.pop()
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(handover, "record_and_hand", flaky)
    lane = await prepared_lane(rt, run.id)
    assert await lane.step() is None
    assert await counts(campaign.id) == {"submitted": 5}
    assert sorted(sent_ids(rt).values()) == [1] * 5


async def test_what_an_interrupted_batch_knew_is_written_by_the_next_lane(
    rt: Runtime, db: str
) -> None:
    """Kept in memory while the database was away: known outcomes, and calls never made."""
    _, run = await make_run(4)
    me = rt.coordination.worker_id  # type: ignore[union-attr]
    ids = sorted(await Message.filter(run_id=run.id).values_list("id", flat=True))
    await Message.filter(id__in=ids).update(
        status=M.SENDING, claimed_by=me, attempts=1, handed_at=T_MONDAY
    )
    rows = {m.id: m for m in await Message.filter(id__in=ids)}
    claimed = [
        claims.Claimed(
            id=i,
            run_id=run.id,
            person_id=rows[i].person_id,
            channel="sms",
            address=rows[i].address,
            subject=None,
            text="t",
            html=None,
            encoding="GSM-7",
            segments=1,
            attempts=1,
        )
        for i in ids[:2]
    ]
    kept = rt.state.dispatch_leftovers
    kept.unrecorded.append((me, [(m, SendResult(Outcome.SUBMITTED, ("P1",))) for m in claimed]))
    kept.releases.append((me, ids, {ids[2]}))  # the third was handed, never called
    await run_dispatch(rt, run.id)
    assert (kept.unrecorded, kept.releases) == ([], [])
    statuses = {m.id: m.status for m in await Message.filter(id__in=ids)}
    assert [statuses[i] for i in ids] == [M.SUBMITTED, M.SUBMITTED, M.SUBMITTED, M.UNCONFIRMED]
    assert set(sent_ids(rt)) == {str(ids[2])}  # sent by the next lane, once


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

"""Receipts stored append-only and applied in bulk: once per part and status, never waiting
for dispatch, coalesced jobs, receipts that come before the send is recorded."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg

from campaigns.core.runtime import Runtime
from campaigns.dispatch import receipt_store, receipts
from campaigns.dispatch.claims import claim_batch
from campaigns.models import DeliveryReceipt, Message, MessagePart, MessageStatus, Person
from providers.base import DeliveryReceipt as Receipt
from tests.dispatch_support import make_run
from workers import jobs
from workers.inprocess import InProcessQueue

M = MessageStatus
NOW = datetime(2026, 3, 16, 12, 0, tzinfo=UTC)


def dlr(pid: str, status: str = "delivered", *, ref: str | None = None, code: str = "0") -> Receipt:
    return Receipt(
        message_id=pid,
        msisdn="+33610000000",
        to="CCAS",
        status=status,
        err_code=code,
        error_text="Remis" if code == "0" else "Numéro invalide",
        price=Decimal("0.0487"),
        client_ref=ref,
        network_code="20801",
        scts=None,
        message_timestamp=datetime(2026, 3, 16, 12, 5, tzinfo=UTC),
        raw={},
    )


async def submitted_messages(n: int, parts: int = 1, *, sending: int = 0) -> list[int]:
    """n submitted messages with their parts P<id>-<k>; `sending` more claimed by "w1"."""
    _, run = await make_run(n + sending, segments=parts)
    ids = sorted(await Message.filter(run_id=run.id).values_list("id", flat=True))
    if sending:
        await Message.filter(id__in=ids[n:]).update(status=M.SENDING, claimed_by="w1")
        ids = ids[:n]
    await Message.filter(id__in=ids).update(status=M.SUBMITTED)
    await MessagePart.bulk_create(
        [
            MessagePart(message_id=mid, provider_message_id=f"P{mid}-{k}")
            for mid in ids
            for k in range(parts)
        ]
    )
    return ids


async def test_a_receipt_is_stored_once_per_part_and_status(db: str) -> None:
    """Vonage's retries land once; a later status of the same part is a new row."""
    assert await receipt_store.store_receipt(dlr("A1", "accepted"), NOW) == "stored"
    assert await receipt_store.store_receipt(dlr("A1", "accepted"), NOW) == "duplicate"
    assert await receipt_store.store_receipt(dlr("A1", "delivered"), NOW) == "stored"
    rows = await DeliveryReceipt.all().order_by("id").values_list("status", "applied_at")
    assert rows == [("accepted", None), ("delivered", None)]


async def test_many_receipts_are_applied_in_one_round(db: str) -> None:
    ids = await submitted_messages(30, parts=2)
    for mid in ids:
        for k in range(2):
            await receipt_store.store_receipt(dlr(f"P{mid}-{k}"), NOW)
    await receipt_store.store_receipt(dlr("NOBODY", ref="999999999"), NOW)
    tally = await receipts.apply_pending_receipts(NOW)
    assert (tally.applied, tally.unknown, tally.deferred) == (60, 1, 0)
    assert set(await Message.filter(id__in=ids).values_list("status", flat=True)) == {M.DELIVERED}
    assert not await DeliveryReceipt.filter(applied_at__isnull=True).exists()
    # Applying again changes nothing: nothing is pending.
    assert (await receipts.apply_pending_receipts(NOW)).total == 0


async def test_a_receipt_for_a_message_still_being_sent_waits_for_the_send_to_be_recorded(
    db: str,
) -> None:
    """Dispatch owns a `sending` message until it records the answer: the receipt waits."""
    _, run = await make_run(1)
    [claimed] = await claim_batch(run.id, "w1", 10, NOW)
    await receipt_store.store_receipt(dlr("EARLY-1", ref=str(claimed.id)), NOW)
    tally = await receipts.apply_pending_receipts(NOW)
    assert (tally.applied, tally.deferred) == (0, 1)
    assert (await Message.get(id=claimed.id)).status == M.SENDING
    # Not looked at again before its time: the next round goes past it.
    assert (await receipts.apply_pending_receipts(NOW)).total == 0
    await Message.filter(id=claimed.id).update(status=M.SUBMITTED)
    await MessagePart.create(message_id=claimed.id, provider_message_id="EARLY-1")
    later = NOW + timedelta(seconds=receipts.DEFER)
    assert (await receipts.apply_pending_receipts(later)).applied == 1
    message = await Message.get(id=claimed.id)
    assert message.status == M.DELIVERED and message.settled_at == later


async def test_an_unconfirmed_message_is_settled_and_the_person_counted_as_contacted(
    db: str,
) -> None:
    _, run = await make_run(1)
    message = await Message.get(run_id=run.id)
    await Message.filter(id=message.id).update(status=M.UNCONFIRMED, error="Envoi interrompu")
    await receipt_store.store_receipt(dlr("V-1", "accepted", ref=str(message.id)), NOW)
    await receipts.apply_pending_receipts(NOW)
    await message.refresh_from_db()
    assert (message.status, message.error) == (M.SUBMITTED, None)
    person = await Person.get(id=message.person_id)
    assert person.last_contacted_at == datetime(2026, 3, 16, 12, 5, tzinfo=UTC)


async def test_a_failed_part_fails_the_message_with_the_receipts_french_text(db: str) -> None:
    [mid] = await submitted_messages(1, parts=2)
    await receipt_store.store_receipt(dlr(f"P{mid}-0"), NOW)
    await receipt_store.store_receipt(dlr(f"P{mid}-1", "failed", code="9"), NOW)
    await receipts.apply_pending_receipts(NOW)
    message = await Message.get(id=mid)
    assert (message.status, message.error) == (M.FAILED, "Numéro invalide (err-code 9)")


async def test_receipt_jobs_are_coalesced(runtime: Runtime, db: str) -> None:
    """Hundreds of receipts a second ask for one job per period, not one each."""
    queue = runtime.queue
    assert isinstance(queue, InProcessQueue)
    for _ in range(50):
        await receipt_store.request_apply(runtime)
    jobs_asked = [p for p in queue.pending if p[0] == receipt_store.APPLY_JOB]
    assert 1 <= len(jobs_asked) <= 2  # a period boundary may fall in the loop
    assert all(0 <= p[3] <= receipt_store.APPLY_EVERY for p in jobs_asked)


async def test_the_job_applies_everything_and_asks_again_for_what_waits(
    runtime: Runtime, db: str
) -> None:
    ids = await submitted_messages(3, sending=1)
    claimed = await Message.get(status=M.SENDING)
    for mid in ids:
        await receipt_store.store_receipt(dlr(f"P{mid}-0"), runtime.clock())
    await receipt_store.store_receipt(dlr("EARLY-2", ref=str(claimed.id)), runtime.clock())
    assert await jobs.apply_receipts({"runtime": runtime}) == 3
    queue = runtime.queue
    assert isinstance(queue, InProcessQueue)
    assert any(p[0] == receipt_store.APPLY_JOB for p in queue.pending)


async def test_applying_never_waits_for_a_message_dispatch_holds(pg_db: str) -> None:
    """PostgreSQL: a lane's transaction holds its `sending` rows; receipts for other messages
    of the same batch are applied meanwhile, and the waiting one is left for later."""
    ids = await submitted_messages(2, sending=1)
    claimed = await Message.get(status=M.SENDING)
    conn = await asyncpg.connect(pg_db.replace("postgres://", "postgresql://"))
    try:
        lock = conn.transaction()
        await lock.start()
        await conn.execute("SELECT id FROM message WHERE id = $1 FOR UPDATE", claimed.id)
        await conn.execute("UPDATE message SET status = 'submitted' WHERE id = $1", claimed.id)
        for mid in ids:
            await receipt_store.store_receipt(dlr(f"P{mid}-0"), NOW)
        await receipt_store.store_receipt(dlr("EARLY-3", ref=str(claimed.id)), NOW)
        tally = await asyncio.wait_for(receipts.apply_pending_receipts(NOW), 5)
        assert (tally.applied, tally.deferred) == (2, 1)
        await lock.rollback()
    finally:
        await conn.close()


async def test_receipts_are_stored_many_at_once_each_once(db: str) -> None:
    """The webhooks' group commit stores a batch in one go; a repeat is a duplicate."""
    batch = [dlr("B1"), dlr("B2", "accepted"), dlr("B1"), dlr("B2")]
    assert await receipt_store.store_receipts(batch, NOW) == [
        "stored",
        "stored",
        "duplicate",
        "stored",
    ]
    assert await receipt_store.store_receipts([dlr("B1"), dlr("B3")], NOW) == [
        "duplicate",
        "stored",
    ]
    assert await DeliveryReceipt.filter(applied_at__isnull=True).count() == 4

"""Recording a group's outcomes: one transaction, committed before the next group leaves.

Failure texts are the providers' own French descriptions (`SendResult.description`),
stored with the reason code after them; dispatch knows no provider's codes.

What each outcome becomes:
- submitted: `submitted`, its parts (one provider id each) and price;
- failed: `failed` with the reason (a partial refusal keeps the parts that left);
- unconfirmed (the call may have reached the provider): `unconfirmed`, never re-sent;
- retry: back to `queued`, due after a jittered back-off, the attempt spent, until
  `max_attempts` makes it `failed`; a throttle spends no attempt and waits what the
  provider asked; nor does a provider that could not be reached at all (nothing left:
  the lane pauses the shared rate meanwhile, see `campaigns.dispatch.handover`).

On PostgreSQL a group is one statement (parts, messages and people contacted from
`unnest(arrays)`, and the next group handed over: one round trip, one commit); the
people another transaction holds are skipped (it is setting the same date). On SQLite,
a few set-based updates in one transaction.
"""

from __future__ import annotations

import logging
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from campaigns.core.db import on_postgres
from campaigns.core.runtime import DispatchConfig, Runtime
from campaigns.dispatch.claims import Claimed
from campaigns.dispatch.outages import retry_lock_conflicts
from campaigns.models import Message, MessagePart, MessageStatus, Person
from providers.base import Outcome, SendResult

__all__ = [
    "UNDESCRIBED",
    "BatchTally",
    "backoff",
    "failure_text",
    "record_and_hand",
    "record_results",
]

log = logging.getLogger(__name__)

M = MessageStatus
# What a failure reads when its provider gave no description (or it never reached one).
UNDESCRIBED = "erreur du fournisseur"
_THROTTLE_WAIT = 1.0  # seconds, when a throttle came without the provider's own figure


def failure_text(result: SendResult) -> str:
    """The short French description of a failed, retried or uncertain send."""
    return result.description or UNDESCRIBED


def _error_text(result: SendResult, prefix: str = "") -> str:
    text = f"{prefix}{failure_text(result)}"
    if result.reason:
        text = f"{text} ({result.reason})"
    return text[:255]


def backoff(attempts: int, base: float, cap: float, retry_after: float | None = None) -> float:
    """Seconds before the next try: the provider's word, else exponential with equal jitter."""
    if retry_after is not None and retry_after > 0:
        return min(cap, retry_after)
    delay = min(cap, base * 2.0 ** max(0, attempts - 1))
    return delay / 2 + random.uniform(0, delay / 2)


@dataclass
class BatchTally:
    submitted: int = 0
    failed: int = 0
    unconfirmed: int = 0
    retried: int = 0
    throttled: int = 0
    unreachable: int = 0


@dataclass(frozen=True)
class _Row:
    """What one message becomes; None fields keep the column's value."""

    id: int
    status: MessageStatus
    error: str | None
    price: Decimal | None = None
    sent_at: datetime | None = None
    next_attempt_at: datetime | None = None
    attempts_delta: int = 0
    release: bool = False  # back to the queue: no longer claimed nor handed over


def _row_for(
    message: Claimed, result: SendResult, cfg: DispatchConfig, now: datetime, tally: BatchTally
) -> _Row:
    if result.outcome is Outcome.SUBMITTED:
        tally.submitted += 1
        return _Row(message.id, M.SUBMITTED, None, result.price, sent_at=now)
    if result.outcome is Outcome.FAILED:
        tally.failed += 1
        return _Row(message.id, M.FAILED, _error_text(result))
    if result.outcome is Outcome.UNCONFIRMED:
        tally.unconfirmed += 1
        return _Row(
            message.id, M.UNCONFIRMED, _error_text(result, "issue incertaine : "), sent_at=now
        )
    if result.throttled:
        # The provider asked us to slow down: not a failure of the message.
        tally.throttled += 1
        wait = result.retry_after if result.retry_after and result.retry_after > 0 else None
        due = now + timedelta(seconds=wait or _THROTTLE_WAIT)
        return _Row(
            message.id, M.QUEUED, None, next_attempt_at=due, attempts_delta=-1, release=True
        )
    if result.unreachable:
        tally.unreachable += 1
        due = now + timedelta(seconds=_THROTTLE_WAIT)
        return _Row(
            message.id, M.QUEUED, None, next_attempt_at=due, attempts_delta=-1, release=True
        )
    if message.attempts >= cfg.max_attempts:
        tally.failed += 1
        prefix = f"abandon après {message.attempts} tentatives : "
        return _Row(message.id, M.FAILED, _error_text(result, prefix))
    tally.retried += 1
    delay = backoff(message.attempts, cfg.backoff_base, cfg.backoff_cap, result.retry_after)
    due = now + timedelta(seconds=delay)
    return _Row(message.id, M.QUEUED, None, next_attempt_at=due, release=True)


async def record_results(
    runtime: Runtime, worker_id: str, results: list[tuple[Claimed, SendResult]], now: datetime
) -> tuple[BatchTally, Counter[str]]:
    """Write a group's outcomes in one transaction; return tallies and failure reasons."""
    tally, reasons, _ = await record_and_hand(runtime, worker_id, results, now)
    return tally, reasons


async def record_and_hand(
    runtime: Runtime,
    worker_id: str,
    results: list[tuple[Claimed, SendResult]],
    now: datetime,
    hand: Sequence[int] = (),
) -> tuple[BatchTally, Counter[str], set[int]]:
    """Write a group's outcomes and mark the next group (`hand`) handed over, atomically.

    Returns tallies, failure reasons and the ids of `hand` still ours to send. The next
    group is handed over in the very commit that records this one's answers: never
    before them, and one round trip instead of two.
    """
    cfg = runtime.dispatch
    tally = BatchTally()
    reasons: Counter[str] = Counter()
    rows: list[_Row] = []
    parts: list[tuple[int, str, Decimal | None]] = []
    contacted: list[int] = []
    for message, result in results:
        row = _row_for(message, result, cfg, now, tally)
        rows.append(row)
        if row.status == M.FAILED:
            reasons[failure_text(result)] += 1
        per_part = None
        if result.price is not None and result.provider_ids:
            per_part = result.price / len(result.provider_ids)
        parts.extend((message.id, pid[:64], per_part) for pid in result.provider_ids if pid)
        if result.outcome is Outcome.SUBMITTED and message.person_id is not None:
            contacted.append(message.person_id)
    handed: set[int] = set()
    if not rows and not hand:
        return tally, reasons, handed

    async def write() -> None:
        nonlocal handed
        conn = connections.get("default")
        if on_postgres(conn):
            handed = await _write_postgres(
                conn, worker_id, rows, parts, sorted(set(contacted)), now, hand
            )
            return
        async with in_transaction() as tx:
            await _write_orm(tx, worker_id, rows, parts, contacted, now)
            if hand:
                mine = Message.filter(id__in=list(hand), claimed_by=worker_id, status=M.SENDING)
                await mine.using_db(tx).update(handed_at=now)
                ids: list[Any] = await (
                    mine.filter(handed_at__isnull=False).using_db(tx).values_list("id", flat=True)
                )
                handed = set(ids)

    await retry_lock_conflicts(write, what="recording a group")
    return tally, reasons, handed


# One statement, so one round trip and one commit: the group's parts, its messages, the
# people contacted, and the next group handed over. Rows are passed as arrays (unnest).
# A refusal stands even over a receipt that came first for a part that was accepted; a
# receipt can also beat us to a part: its row is kept (ON CONFLICT DO NOTHING).
_RECORD_SQL = """
WITH v AS (
  SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::numeric[],
                       $5::timestamptz[], $6::timestamptz[], $7::int[], $8::bool[])
    AS v(id, status, error, price, sent_at, next_attempt_at, delta, release)
), parts AS (
  INSERT INTO message_part (message_id, provider_message_id, status, price, updated_at)
  SELECT p.message_id, p.pid, 'submitted', p.price, $10
  FROM unnest($11::bigint[], $12::text[], $13::numeric[]) AS p(message_id, pid, price)
  ON CONFLICT (provider_message_id) DO NOTHING
), recorded AS (
  UPDATE message AS m SET
    status = v.status,
    error = CASE WHEN v.status = 'queued' THEN m.error ELSE v.error END,
    price = COALESCE(v.price, m.price),
    sent_at = COALESCE(v.sent_at, m.sent_at),
    next_attempt_at = v.next_attempt_at,
    attempts = m.attempts + v.delta,
    claimed_by = CASE WHEN v.release THEN NULL ELSE m.claimed_by END,
    handed_at = CASE WHEN v.release THEN NULL ELSE m.handed_at END,
    settled_at = CASE WHEN v.status = 'failed' THEN NULL ELSE m.settled_at END
  FROM v
  WHERE m.id = v.id AND m.claimed_by = $9
    AND (v.status = 'failed' OR m.status IN ('sending', 'unconfirmed'))
  RETURNING m.id
), contacted AS (
  UPDATE person SET last_contacted_at = $10
  WHERE id IN (SELECT id FROM person WHERE id = ANY($14::int[])
               ORDER BY id FOR UPDATE SKIP LOCKED)
), handed AS (
  UPDATE message SET handed_at = $10
  WHERE id = ANY($15::bigint[]) AND claimed_by = $9 AND status = 'sending'
  RETURNING id
)
SELECT (SELECT count(*) FROM recorded) AS recorded, ARRAY(SELECT id FROM handed) AS handed
"""


async def _write_postgres(
    conn: BaseDBAsyncClient,
    worker_id: str,
    rows: list[_Row],
    parts: list[tuple[int, str, Decimal | None]],
    contacted: list[int],
    now: datetime,
    hand: Sequence[int],
) -> set[int]:
    rows = sorted(rows, key=lambda r: r.id)  # one lock order: ascending ids
    params: list[Any] = [
        [r.id for r in rows],
        [r.status.value for r in rows],
        [r.error for r in rows],
        [r.price for r in rows],
        [r.sent_at for r in rows],
        [r.next_attempt_at for r in rows],
        [r.attempts_delta for r in rows],
        [r.release for r in rows],
        worker_id,
        now,
        [p[0] for p in parts],
        [p[1] for p in parts],
        [p[2] for p in parts],
        contacted,
        sorted(hand),
    ]
    [answer] = await conn.execute_query_dict(_RECORD_SQL, params)
    if answer["recorded"] < len(rows):
        # Claims taken from us meanwhile (recovered as a dead worker's, superseded).
        log.warning(
            "worker %s: %d of %d outcomes not written (claims taken away): %s",
            worker_id,
            len(rows) - answer["recorded"],
            len(rows),
            [r.id for r in rows][:20],
        )
    return set(answer["handed"])


async def _write_orm(
    conn: BaseDBAsyncClient,
    worker_id: str,
    rows: list[_Row],
    parts: list[tuple[int, str, Decimal | None]],
    contacted: list[int],
    now: datetime,
) -> None:
    if parts:
        await MessagePart.bulk_create(
            [MessagePart(message_id=m, provider_message_id=p, price=c) for m, p, c in parts],
            batch_size=500,
            ignore_conflicts=True,
            using_db=conn,
        )
    same: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for row in rows:
        key = (row.status, row.error, row.price, row.sent_at, row.next_attempt_at)
        same[(*key, row.attempts_delta, row.release)].append(row.id)
    for (status, error, price, sent_at, next_at, delta, release), ids in same.items():
        query = Message.filter(id__in=ids, claimed_by=worker_id)
        if status != M.FAILED:
            query = query.filter(status__in=[M.SENDING, M.UNCONFIRMED])
        changes: dict[str, Any] = {"status": status, "next_attempt_at": next_at}
        if status == M.FAILED:
            changes["settled_at"] = None
        if status != M.QUEUED:
            changes["error"] = error
        if price is not None:
            changes["price"] = price
        if sent_at is not None:
            changes["sent_at"] = sent_at
        if delta:
            changes["attempts"] = F("attempts") + delta
        if release:
            changes.update(claimed_by=None, handed_at=None)
        await query.using_db(conn).update(**changes)
    if contacted:
        await Person.filter(id__in=contacted).using_db(conn).update(last_contacted_at=now)

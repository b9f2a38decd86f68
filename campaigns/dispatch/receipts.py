"""Delivery receipts applied in bulk: settle each message's parts, then derive its status.

The status webhook only stores a receipt (`campaigns.dispatch.receipt_store`); a job
applies the pending ones here, many at a time, in one transaction that never waits for
dispatch: appliers run one at a time (an advisory lock), lock the messages concerned in
ascending id order, and leave alone the messages dispatch is still sending (their
receipts wait until the send is recorded, `DEFER` seconds at a time).

Vonage sends one receipt per part, in any order, possibly more than once, possibly
before dispatch has recorded the send. A receipt is matched by the part's provider id,
else by its client-ref (our message id). A message is delivered when every part is;
failed, rejected or expired as soon as one part is (with the part's err-code in French,
as the provider's parser described it); accepted and buffered change nothing but the
part. A receipt for an `unconfirmed` message proves it left: it becomes submitted (or
delivered). Applying a receipt twice changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from campaigns.core.db import on_postgres
from campaigns.dispatch.bulk import bulk_update, bulk_upsert
from campaigns.dispatch.outages import retry_lock_conflicts
from campaigns.models import DeliveryReceipt, Message, MessagePart, MessageStatus, Person
from providers.base import FINAL_STATUSES

__all__ = [
    "DEFER",
    "ApplyTally",
    "apply_pending_receipts",
    "derive_status",
]

log = logging.getLogger(__name__)

M = MessageStatus
_FAILURES = {"failed": M.FAILED, "rejected": M.REJECTED, "expired": M.EXPIRED}
# Statuses a receipt may move a message out of; a receipt-settled final status (settled_at
# set) may also be revised by a later part, but never one dispatch decided (a refusal).
_OPEN = (M.SENDING, M.SUBMITTED, M.UNCONFIRMED)
# A failure read from another part than the receipt at hand, whose code that receipt
# cannot describe (only its own): the code itself follows the text.
OTHER_PART_FAILED = "Échec signalé par l'opérateur"
DEFER = 1.0  # seconds a receipt waits while its message is still being sent
BATCH = 2000  # receipts applied per transaction
_APPLY_LOCK = 0x43_52_45_43  # pg_advisory_xact_lock key: one applier at a time


class _Receipt(Protocol):
    err_code: Any
    error_text: str


def derive_status(
    current: MessageStatus,
    segments: int,
    parts: list[tuple[str, str | None]],
    receipt: _Receipt,
) -> tuple[MessageStatus, str | None]:
    """The message status its parts' (status, err_code) imply, and the error text if failed.

    Until dispatch has recorded the provider's answer (sending, unconfirmed) the number of
    parts is taken from the message's own segment count. `receipt` is the one being
    applied: its description of its err-code is the error text.
    """
    for status, err_code in parts:
        if status in _FAILURES:
            code = (err_code or "").strip()
            text = _error_text(code, receipt)
            return _FAILURES[status], f"{text} (err-code {code or '?'})"[:255]
    expected = len(parts) if current == M.SUBMITTED else max(len(parts), segments, 1)
    delivered = sum(1 for status, _ in parts if status == "delivered")
    if parts and delivered >= expected:
        return M.DELIVERED, None
    return M.SUBMITTED, None


def _error_text(code: str, receipt: _Receipt) -> str:
    # A part's text depends on its code alone: the receipt describes any part sharing it
    # (the part row keeps the code cut to its column's 8 characters).
    if code == (receipt.err_code or "")[:8].strip():
        return receipt.error_text
    return OTHER_PART_FAILED


@dataclass
class ApplyTally:
    applied: int = 0
    unknown: int = 0
    deferred: int = 0

    @property
    def total(self) -> int:
        return self.applied + self.unknown + self.deferred


@dataclass(slots=True)
class _Part:
    message_id: int
    status: str = "submitted"
    err_code: str | None = None
    price: Decimal | None = None
    dirty: bool = False


@dataclass(slots=True)
class _Pending:
    """A stored receipt not yet applied, as read."""

    id: int
    provider_message_id: str
    status: str
    err_code: str | None
    error_text: str
    price: Decimal | None
    client_ref: str | None
    message_timestamp: datetime | None


@dataclass(slots=True)
class _Message:
    """What applying reads and writes of a message."""

    id: int
    status: MessageStatus
    segments: int
    settled_at: datetime | None
    sent_at: datetime | None
    price: Decimal | None
    person_id: int | None
    error: str | None


@dataclass
class _State:
    """One message as the receipts of this round leave it."""

    message: _Message
    parts: dict[str, _Part] = field(default_factory=dict)
    dirty: bool = False
    contacted_at: datetime | None = None


async def apply_pending_receipts(now: datetime, *, limit: int = BATCH) -> ApplyTally:
    """Apply up to `limit` pending receipts (oldest first) in one transaction."""

    async def once() -> ApplyTally:
        async with in_transaction() as conn:
            return await _apply(conn, now, limit)

    return await retry_lock_conflicts(once, what="applying receipts")


async def _apply(conn: BaseDBAsyncClient, now: datetime, limit: int) -> ApplyTally:
    tally = ApplyTally()
    # Plain SQL on PostgreSQL (the production engine: no model built per row, fewer round
    # trips); the ORM elsewhere. Both read the same rows into the same shapes.
    reader = _PostgresReader(conn) if on_postgres(conn) else _OrmReader(conn)
    await reader.lock_appliers()
    receipts = await reader.pending(now, limit)
    if not receipts:
        return tally
    known = await reader.parts_by_provider_id(list({r.provider_message_id for r in receipts}))
    target = {r.id: known.get(r.provider_message_id) or _client_ref(r) for r in receipts}
    wanted = sorted({mid for mid in target.values() if mid is not None})
    # Dispatch still sending a message: its receipt waits (no lock taken on such rows).
    messages = await reader.lock_messages(wanted)
    states = {m.id: _State(m) for m in messages}
    existing = set(states)
    if len(existing) < len(wanted):
        existing.update(await reader.existing([mid for mid in wanted if mid not in states]))
    for mid, pid, status, err_code, price in await reader.parts_of(list(states)):
        states[mid].parts[pid] = _Part(mid, status, err_code, price)
    outcomes: list[tuple[int, str, int | None]] = []
    deferred: list[int] = []
    for receipt in receipts:
        mid = target[receipt.id]
        if mid is None or mid not in existing:
            log.info("delivery receipt for unknown message %s", receipt.provider_message_id)
            outcomes.append((receipt.id, "unknown", None))
            tally.unknown += 1
        elif mid not in states:
            deferred.append(receipt.id)
            tally.deferred += 1
        else:
            _settle(states[mid], receipt, now)
            outcomes.append((receipt.id, "applied", mid))
            tally.applied += 1
    await _write(conn, states, outcomes, deferred, now)
    return tally


_PENDING_SQL = """
SELECT id, provider_message_id, status, err_code, error_text, price, client_ref,
       message_timestamp
FROM delivery_receipt
WHERE applied_at IS NULL AND (due_at IS NULL OR due_at <= $1)
ORDER BY id LIMIT $2
"""
_KNOWN_SQL = """
SELECT provider_message_id, message_id FROM message_part
WHERE provider_message_id = ANY($1::text[])
"""
_LOCK_SQL = """
SELECT id, status, segments, settled_at, sent_at, price, person_id, error FROM message
WHERE id = ANY($1::bigint[]) AND status <> 'sending'
ORDER BY id FOR NO KEY UPDATE
"""
_EXISTING_SQL = "SELECT id FROM message WHERE id = ANY($1::bigint[])"
_PARTS_SQL = """
SELECT message_id, provider_message_id, status, err_code, price FROM message_part
WHERE message_id = ANY($1::bigint[])
"""
_MESSAGE_FIELDS = (
    "id",
    "status",
    "segments",
    "settled_at",
    "sent_at",
    "price",
    "person_id",
    "error",
)
_PART_FIELDS = ("message_id", "provider_message_id", "status", "err_code", "price")


class _PostgresReader:
    def __init__(self, conn: BaseDBAsyncClient) -> None:
        self.conn = conn

    async def _rows(self, sql: str, *params: Any) -> list[Any]:
        _, rows = await self.conn.execute_query(sql, list(params))
        return list(rows)

    async def lock_appliers(self) -> None:
        await self.conn.execute_query("SELECT pg_advisory_xact_lock($1)", [_APPLY_LOCK])

    async def pending(self, now: datetime, limit: int) -> list[_Pending]:
        return [_Pending(*row) for row in await self._rows(_PENDING_SQL, now, limit)]

    async def parts_by_provider_id(self, provider_ids: list[str]) -> dict[str, int]:
        return {pid: mid for pid, mid in await self._rows(_KNOWN_SQL, provider_ids)}

    async def lock_messages(self, ids: list[int]) -> list[_Message]:
        if not ids:
            return []
        return [_Message(row[0], M(row[1]), *row[2:]) for row in await self._rows(_LOCK_SQL, ids)]

    async def existing(self, ids: list[int]) -> set[int]:
        return {row[0] for row in await self._rows(_EXISTING_SQL, ids)}

    async def parts_of(self, ids: list[int]) -> list[Any]:
        return await self._rows(_PARTS_SQL, ids) if ids else []


class _OrmReader:
    def __init__(self, conn: BaseDBAsyncClient) -> None:
        self.conn = conn

    async def lock_appliers(self) -> None:
        """One process on SQLite: nothing to lock."""

    async def pending(self, now: datetime, limit: int) -> list[_Pending]:
        due = Q(due_at__isnull=True) | Q(due_at__lte=now)
        rows = (
            await DeliveryReceipt.filter(due, applied_at__isnull=True)
            .order_by("id")
            .limit(limit)
            .using_db(self.conn)
        )
        return [
            _Pending(
                r.id,
                r.provider_message_id,
                r.status,
                r.err_code,
                r.error_text,
                r.price,
                r.client_ref,
                r.message_timestamp,
            )
            for r in rows
        ]

    async def parts_by_provider_id(self, provider_ids: list[str]) -> dict[str, int]:
        return dict(
            await MessagePart.filter(provider_message_id__in=provider_ids)
            .using_db(self.conn)
            .values_list("provider_message_id", "message_id")
        )

    async def lock_messages(self, ids: list[int]) -> list[_Message]:
        rows = (
            await Message.filter(id__in=ids)
            .exclude(status=M.SENDING)
            .order_by("id")
            .select_for_update(no_key=True)
            .only(*_MESSAGE_FIELDS)
            .using_db(self.conn)
        )
        return [_Message(*(getattr(m, name) for name in _MESSAGE_FIELDS)) for m in rows]

    async def existing(self, ids: list[int]) -> set[int]:
        found: list[Any] = await (
            Message.filter(id__in=ids).using_db(self.conn).values_list("id", flat=True)
        )
        return set(found)

    async def parts_of(self, ids: list[int]) -> list[Any]:
        return list(
            await MessagePart.filter(message_id__in=ids)
            .using_db(self.conn)
            .values_list(*_PART_FIELDS)
        )


def _client_ref(receipt: _Pending) -> int | None:
    ref = (receipt.client_ref or "").strip()
    return int(ref) if ref.isdigit() and len(ref) < 19 else None


def _settle(state: _State, receipt: _Pending, now: datetime) -> None:
    """Apply one receipt to the message's in-memory state, as if alone."""
    message = state.message
    part = state.parts.get(receipt.provider_message_id)
    if part is None:
        part = state.parts[receipt.provider_message_id] = _Part(message.id)
    # A late "accepted" never undoes a final status of the part.
    if receipt.status in FINAL_STATUSES or part.status not in FINAL_STATUSES:
        part.status = receipt.status
        part.err_code = (receipt.err_code or "")[:8]
        if receipt.price is not None:
            part.price = receipt.price
        part.dirty = True
    if message.status not in _OPEN and message.settled_at is None:
        return
    parts = [(p.status, p.err_code) for p in state.parts.values()]
    status, error = derive_status(message.status, message.segments, parts, receipt)
    was = message.status
    if status != message.status:
        message.status, message.error = status, error
    if status in (M.DELIVERED, *_FAILURES.values()):
        message.settled_at = message.settled_at or now
    else:
        message.settled_at = None  # a revised final status (rare): open again
    if message.sent_at is None:
        message.sent_at = receipt.message_timestamp or now
    if message.price is None:
        prices = [p.price for p in state.parts.values() if p.price is not None]
        if prices:
            message.price = sum(prices, Decimal(0))
    state.dirty = True
    if was in (M.SENDING, M.UNCONFIRMED) and message.person_id is not None:
        state.contacted_at = message.sent_at


_CONTACTED_SQL = """
UPDATE person AS p SET last_contacted_at = v.at
FROM unnest($1::int[], $2::timestamptz[]) AS v(id, at)
WHERE p.id = v.id AND p.id IN (
  SELECT id FROM person WHERE id = ANY($1::int[]) ORDER BY id FOR UPDATE SKIP LOCKED)
"""


async def _write(
    conn: BaseDBAsyncClient,
    states: dict[int, _State],
    outcomes: list[tuple[int, str, int | None]],
    deferred: list[int],
    now: datetime,
) -> None:
    parts = [
        (p.message_id, pid, p.status, p.err_code, p.price, now)
        for state in states.values()
        for pid, p in state.parts.items()
        if p.dirty
    ]
    await bulk_upsert(
        conn,
        "message_part",
        "provider_message_id",
        [
            ("message_id", "bigint"),
            ("provider_message_id", "text"),
            ("status", "text"),
            ("err_code", "text"),
            ("price", "numeric"),
            ("updated_at", "timestamptz"),
        ],
        parts,
        update=("status", "err_code", "price", "updated_at"),
    )
    changed = [s.message for s in states.values() if s.dirty]
    await bulk_update(
        conn,
        "message",
        ("id", "bigint"),
        [
            ("status", "text"),
            ("error", "text"),
            ("settled_at", "timestamptz"),
            ("sent_at", "timestamptz"),
            ("price", "numeric"),
        ],
        [(m.id, str(m.status), m.error, m.settled_at, m.sent_at, m.price) for m in changed],
    )
    contacted = sorted(
        (s.message.person_id, s.contacted_at)
        for s in states.values()
        if s.contacted_at is not None and s.message.person_id is not None
    )
    if contacted and on_postgres(conn):
        ids = [pid for pid, _ in contacted]
        await conn.execute_query(_CONTACTED_SQL, [ids, [at for _, at in contacted]])
    else:
        for person_id, at in contacted:
            await Person.filter(id=person_id).using_db(conn).update(last_contacted_at=at)
    await bulk_update(
        conn,
        "delivery_receipt",
        ("id", "bigint"),
        [("applied_at", "timestamptz"), ("outcome", "text"), ("message_id", "bigint")],
        [(rid, now, outcome, mid) for rid, outcome, mid in outcomes],
    )
    if deferred:
        await (
            DeliveryReceipt.filter(id__in=deferred)
            .using_db(conn)
            .update(due_at=now + timedelta(seconds=DEFER))
        )

"""The launch's input and output in batches: the audience streamed in, the messages streamed out.

A launch of a million people must neither hold them all in memory nor wait on the
database row by row. The audience is read in pages of people in id order with the
opt-outs of each batch's addresses; the messages go out as they are decided. On
PostgreSQL the reading runs on a connection of its own (a server-side cursor in a
read-only snapshot) and the writing is one binary COPY on the launch's transaction, so
the database reads and writes while this process decides; SQLite reads by keyset
pages and writes with executemany, inside the launch's transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient, TransactionalDBClient

from campaigns.core.db import on_postgres, placeholders
from campaigns.models import Message, OptOut

# What launch reads of a person, in this order (rows are tuples).
PERSON_COLUMNS = ("id", "civility", "first_name", "last_name", "mobile", "landline", "email")
# Opt-outs are looked up for this many people at a time, as they always were: with
# e-mail addresses compared without case, which opt-outs a person meets may depend on
# the addresses next to theirs, so the cut stays where it was (every BATCH people).
BATCH = 1000
# Batches waiting between the reader, the planner and the writer: enough to keep each
# busy, few enough that memory does not grow with the audience. Small on purpose:
# rows that live long are promoted by the garbage collector and make its full passes
# longer (pages of 5,000 people four deep cost a sixth more CPU, a third of it in GC).
QUEUE_DEPTH = 2


@dataclass(frozen=True)
class Batch:
    """Up to BATCH people of the audience, in id order, and the opted-out addresses among them.

    `opted_out` holds the keys (see `address_key`) of active opt-outs matching the
    batch's addresses.
    """

    rows: Sequence[Sequence[Any]]
    opted_out: frozenset[str]


def address_key(channel: str, address: str) -> str:
    # E-mail addresses are compared without case (nobody has two boxes differing by case).
    return address.lower() if channel == "email" else address


def usable_address(channel: str, row: Sequence[Any]) -> tuple[str | None, str | None]:
    """(address, skip reason): the person's usable address, or why there is none."""
    if channel == "sms":
        if row[4]:
            return row[4], None
        return None, "landline_only" if row[5] else "no_address"
    email = (row[6] or "").strip()
    return (email, None) if email else (None, "no_address")


def _candidates(channel: str, rows: Sequence[Sequence[Any]]) -> list[str]:
    """The addresses to look up among the opt-outs: as written, and as compared."""
    if channel == "sms":  # usable_address and address_key, for the common case
        return list({row[4] for row in rows if row[4]})
    addresses = {a for a, _ in (usable_address(channel, row) for row in rows) if a}
    return list(addresses | {address_key(channel, a) for a in addresses})


def reads_apart(db: BaseDBAsyncClient) -> bool:
    """Whether the audience can be read on a connection of its own, beside the writing.

    On PostgreSQL, unless the launch runs inside a caller's transaction: what that
    transaction wrote is seen only on its own connection, so everything then goes
    through it, one statement after the other.
    """
    return on_postgres(db) and not isinstance(db, TransactionalDBClient)


def audience_batches(
    criteria: dict[str, Any], today: date, channel: str, *, db: BaseDBAsyncClient
) -> AsyncIterator[Batch]:
    """The audience in id order, BATCH people at a time, each batch with its opt-outs.

    The filter is checked now (Invalid), the database read only when iterated. `db` is
    the connection the launch started with, outside its transaction: on PostgreSQL the
    reader takes a connection of its own from its pool.
    """
    # Imported here: the audience module belongs to another part of the service.
    from campaigns.registry.audiences import audience_query

    query = audience_query(criteria, today)
    if reads_apart(db):
        return _in_order(_postgres_batches(query, channel, db))
    return _in_order(_keyset_batches(query, channel))


async def _in_order(
    source: AsyncIterator[tuple[Sequence[Sequence[Any]], frozenset[str]]],
) -> AsyncIterator[Batch]:
    last = 0
    async with contextlib.aclosing(source):  # type: ignore[type-var]
        async for rows, opted_out in source:
            # A person is never planned twice, should the query ever repeat one (a join).
            if rows and (rows[0][0] <= last or len({row[0] for row in rows}) < len(rows)):
                unique = []
                for row in rows:
                    if row[0] > last:
                        unique.append(row)
                        last = row[0]
                rows = unique
            if rows:
                last = rows[-1][0]
                yield Batch(rows, opted_out)


async def _keyset_batches(
    query: Any, channel: str
) -> AsyncIterator[tuple[list[tuple[Any, ...]], frozenset[str]]]:
    """Pages by id through the ORM, in the caller's transaction (SQLite has one connection)."""
    last = 0
    while True:
        rows = (
            await query.filter(id__gt=last).order_by("id").limit(BATCH).values_list(*PERSON_COLUMNS)
        )
        if not rows:
            return
        found: list[str] = await OptOut.filter(
            address__in=_candidates(channel, rows), active=True
        ).values_list("address", flat=True)  # type: ignore[assignment]
        yield rows, frozenset(address_key(channel, a) for a in found)
        last = rows[-1][0]


_OPT_OUTS_SQL = 'SELECT "address" FROM "opt_out" WHERE "active" AND "address" = ANY($1::text[])'


async def _postgres_batches(
    query: Any, channel: str, db: Any
) -> AsyncIterator[tuple[list[Any], frozenset[str]]]:
    """A server-side cursor in a read-only snapshot, read ahead by a task of its own."""
    values = query.order_by("id").values_list(*PERSON_COLUMNS)
    values.sql()  # builds the query for this connection's dialect
    sql, params = values.query.get_parameterized_sql()
    queue: asyncio.Queue[tuple[list[Any], frozenset[str]] | None] = asyncio.Queue(QUEUE_DEPTH)

    async def read() -> None:
        async with (
            db.acquire_connection() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            cursor = await conn.cursor(sql, *params)
            while rows := await cursor.fetch(BATCH):
                found = await conn.fetch(_OPT_OUTS_SQL, _candidates(channel, rows))
                keys = frozenset(address_key(channel, r[0]) for r in found)
                await queue.put((rows, keys))
        await queue.put(None)

    reader = asyncio.create_task(read())
    try:
        while (item := await queue.get()) is not None:
            yield item
        await reader  # its errors, if any
    finally:
        if not reader.done():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


class MessageWriter:
    """Writes planned messages: rows of database values, `columns` in order.

    A row is the launch's own values (`decided`, in that order) followed by `tail`: the
    default of every other column that has one (the creation time, attempts...), so a
    column added to Message later still gets its default. Columns whose default is None
    are left out and stay NULL.
    """

    def __init__(self, decided: Sequence[str], now: datetime) -> None:
        fields_map = Message._meta.fields_map
        executor = Message._meta.db.executor_class(model=Message, db=Message._meta.db)
        regular = list(executor.regular_columns)
        missing = set(decided) - set(regular)
        if missing:
            raise ValueError(f"not columns of message: {sorted(missing)}")
        tail_columns: list[str] = []
        tail: list[Any] = []
        for name in regular:
            if name in decided:
                continue
            f = fields_map[name]
            if getattr(f, "auto_now_add", False) or getattr(f, "auto_now", False):
                value: Any = now
            else:
                value = f.default() if callable(f.default) else f.default
            if value is not None:
                tail_columns.append(name)
                tail.append(f.to_db_value(value, Message))
        self.columns: list[str] = [*decided, *tail_columns]
        self.tail: tuple[Any, ...] = tuple(tail)

    def row_builder(self) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
        """A function turning the `decided` values of one message into a full row."""
        tail = self.tail
        return lambda values: values + tail

    @contextlib.asynccontextmanager
    async def stream(self, *, apart: bool) -> AsyncIterator[Callable[[list[tuple[Any, ...]]], Any]]:
        """Yields `put(rows)`, an awaitable call; all rows are written when the block exits.

        `apart`: the audience is read on another connection, so one COPY can stream on
        this one from start to end; otherwise each batch is written before the next is
        read. Message's connection is looked up here, inside the launch's transaction.
        """
        db = Message._meta.db
        if on_postgres(db) and not apart:

            async def copy_batch(rows: list[tuple[Any, ...]]) -> None:
                if rows:
                    async with db.acquire_connection() as conn:
                        await conn.copy_records_to_table(
                            Message._meta.db_table, records=rows, columns=self.columns
                        )

            yield copy_batch
            return
        if not on_postgres(db):
            names = ", ".join(f'"{c}"' for c in self.columns)
            marks = ", ".join(placeholders(len(self.columns), db))
            sql = f'INSERT INTO "{Message._meta.db_table}" ({names}) VALUES ({marks})'

            async def put_many(rows: list[tuple[Any, ...]]) -> None:
                if rows:
                    await db.execute_many(sql, rows)  # type: ignore[arg-type]  # tuples do

            yield put_many
            return
        queue: asyncio.Queue[list[tuple[Any, ...]] | None] = asyncio.Queue(QUEUE_DEPTH)

        async def records() -> AsyncIterator[tuple[Any, ...]]:
            while (rows := await queue.get()) is not None:
                for row in rows:
                    yield row

        async def copy() -> None:
            async with db.acquire_connection() as conn:
                await conn.copy_records_to_table(
                    Message._meta.db_table, records=records(), columns=self.columns
                )

        writer = asyncio.create_task(copy())

        async def put(rows: list[tuple[Any, ...]]) -> None:
            if writer.done():  # failed: say why now rather than wait on a full queue
                await writer
            await queue.put(rows)

        try:
            yield put
            await put(None)  # type: ignore[arg-type]
            await writer
        finally:
            if not writer.done():
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer


__all__ = [
    "BATCH",
    "PERSON_COLUMNS",
    "Batch",
    "MessageWriter",
    "address_key",
    "audience_batches",
    "reads_apart",
    "usable_address",
]

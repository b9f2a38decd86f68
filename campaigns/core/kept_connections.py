"""PostgreSQL connections the webhooks' batches keep from one batch to the next.

A batch writes a few statements (a multi-row INSERT, for long SMS a few more). Through
the pool, each of them takes a connection and gives it back, and asyncpg's pool runs its
reset query (`RESET ALL`, `UNLISTEN *`, ...) on every give-back: one more round trip per
statement, and as much server work as the INSERT itself. A batch instead writes on a
connection of its own, kept between batches: `pinned()` makes it the default connection
of the batch's task (tortoise's context, as a transaction does, but without BEGIN and
COMMIT: each statement commits by itself, exactly as through the pool).

The statements written there change no session state (no SET, no LISTEN, no advisory
lock, no transaction left open), so there is nothing to reset between batches. As many
connections are kept as batches are written at once. One whose batch failed goes back
to the pool (which resets or discards it) and a fresh one is taken next time; `close`
gives them all back (the pool cannot close while connections are out). Where there is
no pool (SQLite), `pinned()` changes nothing.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from tortoise import connections
from tortoise.backends.asyncpg.client import AsyncpgDBClient, TransactionWrapper

__all__ = ["HeldConnections", "Pin"]

log = logging.getLogger(__name__)


class Pin:
    """What `pinned()` yields: say `failed_statement = True` if a statement failed."""

    __slots__ = ("failed", "failed_statement")

    def __init__(self) -> None:
        self.failed = False
        self.failed_statement = False


class HeldConnections:
    """Connections of the default tortoise client kept out of its pool between batches."""

    def __init__(self, connection_name: str = "default") -> None:
        self.connection_name = connection_name
        self._client: Any = None  # the pooled client the connections come from
        self._idle: list[Any] = []
        self._leases: dict[int, Any] = {}  # id(raw connection) -> the pool's wrapper

    @property
    def held(self) -> int:
        return len(self._leases)

    @contextlib.asynccontextmanager
    async def pinned(self) -> AsyncIterator[Pin]:
        """Within: the default connection of this task (and of the tasks it starts) is a
        kept connection, statements committing one by one. Set `failed` on what it yields
        when a statement failed: the connection then goes back to the pool."""
        pin = Pin()
        client = connections.get(self.connection_name)
        if type(client) is not AsyncpgDBClient:  # SQLite, or already in a transaction
            yield pin
            return
        raw = await self._take(client)
        wrapper = TransactionWrapper(client)
        wrapper._connection = raw  # the wrapper's connection: this one, never begun
        token = connections.set(self.connection_name, wrapper)
        pin.failed = True
        try:
            yield pin
            pin.failed = pin.failed_statement
        finally:
            connections.reset(token)
            await self._give(raw, failed=pin.failed)

    async def close(self) -> None:
        """Give every kept connection back to the pool."""
        self._idle = []
        for key in list(self._leases):
            await self._release(key)
        self._client = None

    async def _take(self, client: Any) -> Any:
        if client is not self._client:
            # Another client (the database was initialised again): its pool is another.
            await self.close()
            self._client = client
        while self._idle:
            raw = self._idle.pop()
            if not raw.is_closed():
                return raw
            await self._release(id(raw))  # lost meanwhile (a database restart)
        lease = client.acquire_connection()
        raw = await lease.__aenter__()
        self._leases[id(raw)] = lease
        return raw

    async def _give(self, raw: Any, *, failed: bool) -> None:
        if failed or raw.is_closed() or raw.is_in_transaction():
            # Maybe broken, or left in a state a reset would clear: back to the pool.
            await self._release(id(raw))
        else:
            self._idle.append(raw)

    async def _release(self, key: int) -> None:
        lease = self._leases.pop(key, None)
        if lease is None:
            return
        try:
            await lease.__aexit__(None, None, None)
        except Exception as exc:  # a broken connection: the pool discards it
            log.debug("kept connection not given back cleanly: %r", exc)

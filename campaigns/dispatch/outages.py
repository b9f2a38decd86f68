"""Telling a lost database from a bug, and waiting for it: outages and lock conflicts.

A worker or a web process must not die, nor mark messages it knows the fate of as
unconfirmed, because PostgreSQL restarted. `database_unavailable` recognises the errors
of a lost server (refused connection, server shut down or starting, connection closed
mid-query) whatever layer wrapped them; `lock_conflict` a deadlock or serialization
failure, which is retried at once. `wait_for_database` tries again with the growing
delays of an `Outage` (`campaigns.core.outage`), which logs the outage once when it
starts and once when it ends, not at every retry.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from tortoise import Tortoise

from campaigns.core.outage import Outage

__all__ = [
    "QuietDuringOutage",
    "database_unavailable",
    "lock_conflict",
    "probe_database",
    "retry_lock_conflicts",
    "wait_for_database",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

# SQLSTATEs of a server that is away: class 08 (connection exception), shutdowns, start-up.
_AWAY_STATES = frozenset({"57P01", "57P02", "57P03", "53300"})
_CONFLICT_STATES = frozenset({"40P01", "40001"})  # deadlock detected, serialization failure
# asyncpg's InterfaceError texts when the connection or the pool went away under a query.
_AWAY_TEXTS = (
    "connection is closed",
    "connection was closed",
    "pool is closing",
    "pool is closed",
    "cannot perform operation",
    "the server closed",
    "terminating connection",
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    stack = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        stack.extend(a for a in current.args if isinstance(a, BaseException))


def _sqlstate(exc: BaseException) -> str:
    return str(getattr(exc, "sqlstate", "") or "")


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database server cannot be reached (rather than a bug)."""
    for cause in _chain(exc):
        state = _sqlstate(cause)
        if state.startswith("08") or state in _AWAY_STATES:
            return True
        if isinstance(cause, ConnectionError | TimeoutError | OSError):
            return True
        name = type(cause).__name__
        if name in {"ConnectionDoesNotExistError", "DBConnectionError", "InterfaceError"}:
            text = str(cause).lower()
            if name != "InterfaceError" or any(t in text for t in _AWAY_TEXTS):
                return True
    return False


def lock_conflict(exc: BaseException) -> bool:
    """A deadlock or serialization failure (PostgreSQL), or a busy SQLite file."""
    for cause in _chain(exc):
        if _sqlstate(cause) in _CONFLICT_STATES:
            return True
        if "database is locked" in str(cause).lower():
            return True
    return False


async def retry_lock_conflicts(
    action: Callable[[], Awaitable[T]], *, what: str, attempts: int = 5
) -> T:
    """Run `action` (a whole transaction) again at once when it lost a lock conflict."""
    for attempt in range(1, attempts + 1):
        try:
            return await action()
        except Exception as exc:
            if attempt == attempts or not lock_conflict(exc):
                raise
            log.info("%s: lock conflict, retried at once (%d)", what, attempt)
            await asyncio.sleep(random.uniform(0, 0.01 * attempt))
    raise AssertionError("unreachable")


class QuietDuringOutage(logging.Filter):
    """Drops a library's own per-retry messages while `outage` is known and logged once
    (asyncpg's pool logs a traceback each time it fails to reconnect)."""

    def __init__(self, outage: Outage) -> None:
        super().__init__()
        self.outage = outage

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.outage.down


async def probe_database() -> None:
    await Tortoise.get_connection("default").execute_query("SELECT 1")


async def wait_for_database(
    outage: Outage,
    *,
    limit: float | None = None,
    probe: Callable[[], Awaitable[None]] | None = None,
) -> bool:
    """Try the database with growing delays until it answers (True) or `limit` s passed."""
    probe = probe or probe_database
    deadline = None if limit is None else time.monotonic() + limit
    while True:
        try:
            await probe()
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            outage.failed(exc)
        else:
            await outage.recovered()
            return True
        delay = outage.delay()
        if deadline is not None and time.monotonic() + delay > deadline:
            return False
        await asyncio.sleep(delay)

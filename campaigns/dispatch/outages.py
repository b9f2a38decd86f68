"""Telling a lost database from a bug, and waiting for it: outages and lock conflicts.

A worker or a web process must not die, nor mark messages it knows the fate of as
unconfirmed, because PostgreSQL restarted. `database_unavailable` recognises the errors
of a lost server (refused connection, server shut down or starting, connection closed
mid-query) whatever layer wrapped them; `lock_conflict` a deadlock or serialization
failure, which is retried at once. `Outage` logs an outage once when it starts and once
when it ends, not at every retry.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from tortoise import Tortoise

__all__ = [
    "Outage",
    "QuietDuringOutage",
    "database_outage",
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


class Outage:
    """A dependency's outage as one process sees it: one log line when it starts, one when
    it ends; the delays between tries grow from `first` to `cap` seconds."""

    def __init__(self, name: str, *, first: float = 0.2, cap: float = 2.0) -> None:
        self.name = name
        self.first = first
        self.cap = cap
        self.down_since: float | None = None
        self.tries = 0
        self._listeners: list[Callable[[], Awaitable[Any]]] = []

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def failed(self, exc: BaseException) -> None:
        self.tries += 1
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.warning(
                "%s injoignable (%s) : nouvelles tentatives jusqu'à son retour",
                self.name,
                type(exc).__name__,
            )

    def delay(self) -> float:
        base = min(self.cap, self.first * 2.0 ** max(0, self.tries - 1))
        return base / 2 + random.uniform(0, base / 2)

    def on_recovery(self, listener: Callable[[], Awaitable[Any]]) -> None:
        """Call `listener` (once per outage) when the dependency is back."""
        self._listeners.append(listener)

    async def recovered(self) -> None:
        if self.down_since is None:
            return
        lasted = time.monotonic() - self.down_since
        self.down_since, self.tries = None, 0
        log.warning("%s de retour après %.1f s", self.name, lasted)
        for listener in list(self._listeners):
            try:
                await listener()
            except Exception:
                log.exception("%s: recovery step failed", self.name)


class QuietDuringOutage(logging.Filter):
    """Drops a library's own per-retry messages while `outage` is known and logged once
    (asyncpg's pool logs a traceback each time it fails to reconnect)."""

    def __init__(self, outage: Outage) -> None:
        super().__init__()
        self.outage = outage

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.outage.down


def database_outage(extras: dict[str, Any]) -> Outage:
    """The process's one view of the database's outages (kept in Runtime.extras)."""
    outage = extras.get("database_outage")
    if not isinstance(outage, Outage):
        outage = extras["database_outage"] = Outage("PostgreSQL")
    return outage


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

"""One source of "now", so that tests can fix the clock instead of sleeping."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(at: datetime) -> datetime:
    """An instant in UTC, as the database should get it.

    SQLite keeps a datetime as the text it was given and compares filter values as text:
    an instant written or filtered in another zone (a send window's local time) would
    compare wrongly, so every instant we store or filter on is UTC.
    """
    return at.astimezone(UTC)

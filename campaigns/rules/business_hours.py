"""Due times counted in opening hours, for SLA timers on escalations and callbacks.

A "24 h" callback promise at a CCAS open ``mon-fri 09:00-17:00`` means three working
days, not tomorrow at the same time: only open time counts, holidays excluded.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from campaigns.rules.send_window import SendWindow

__all__ = ["due_at", "open_time_between"]

# Guard against a runaway loop; each step consumes one open period (a day or less).
_MAX_PERIODS = 100_000


def due_at(start: datetime, hours: float, *, window: SendWindow | None) -> datetime:
    """The instant when ``hours`` of time have elapsed since ``start``.

    Without a window (or with ``always``) it is plain elapsed time. With a window only
    open time counts: a start outside opening hours begins counting at the next
    opening, and a deadline falling exactly on a closing time stays there (Friday
    17:00, not Monday 09:00). The result is in the window's zone, else in ``start``'s.
    """
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("a timezone-aware datetime is required")
    if hours < 0:
        raise ValueError("hours must be zero or positive")
    remaining = timedelta(hours=hours)
    # Arithmetic on UTC instants: adding to a zoned datetime would add wall-clock time
    # and be an hour off across a daylight-saving change.
    if window is None or window.always:
        zone = window.tz if window is not None else start.tzinfo
        return (start.astimezone(UTC) + remaining).astimezone(zone)
    cursor = window.next_open(start).astimezone(UTC)
    for _ in range(_MAX_PERIODS):
        closes = window.closes_at(cursor)
        if closes is None:  # only when next_open() returned a closed instant: impossible
            break
        available = closes.astimezone(UTC) - cursor
        if remaining <= available:
            return (cursor + remaining).astimezone(window.tz)
        remaining -= available
        cursor = window.next_open(closes).astimezone(UTC)
    raise ValueError("délai trop long pour être compté en heures d'ouverture")


def open_time_between(start: datetime, end: datetime, *, window: SendWindow | None) -> timedelta:
    """How much open time lies between two instants (zero when ``end`` <= ``start``).

    Lets a queue show "2 h 30 ouvrées restantes" or measure how late an SLA is.
    """
    for value in (start, end):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("a timezone-aware datetime is required")
    begin, finish = start.astimezone(UTC), end.astimezone(UTC)
    if finish <= begin:
        return timedelta(0)
    if window is None or window.always:
        return finish - begin
    total = timedelta(0)
    cursor = window.next_open(begin).astimezone(UTC)
    for _ in range(_MAX_PERIODS):
        if cursor >= finish:
            break
        closes = window.closes_at(cursor)
        if closes is None:
            break
        stop = min(closes.astimezone(UTC), finish)
        total += stop - cursor
        cursor = window.next_open(closes).astimezone(UTC)
    return total

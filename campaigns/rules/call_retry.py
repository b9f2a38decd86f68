"""When to try a call again after no answer: later, at another time of day, while open.

Someone who does not answer at 10:00 is often out every morning (a day centre, the
market, a nurse's visit), so the next attempt goes to a part of the day not tried yet:
morning, early afternoon, late afternoon. Attempts are only planned while the CCAS is
open (its opening hours and holidays), and never sooner than a minimum delay.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from campaigns.rules.send_window import SendWindow

__all__ = ["DAY_PARTS", "day_part", "next_attempt"]

# Local hour at which each part of the day begins: morning, early and late afternoon.
DAY_PARTS = (0, 12, 16)
_STEP = timedelta(minutes=30)
_HORIZON = timedelta(days=21)


def day_part(at: datetime, window: SendWindow | None) -> int:
    """0 morning, 1 early afternoon, 2 late afternoon, in the CCAS's time zone."""
    local = at.astimezone(window.tz) if window is not None else at
    part = 0
    for index, start in enumerate(DAY_PARTS):
        if local.hour >= start:
            part = index
    return part


def _first_open(at: datetime, window: SendWindow | None) -> datetime:
    return at if window is None else window.next_open(at)


def next_attempt(
    attempts: Sequence[datetime],
    window: SendWindow | None,
    *,
    min_delay: timedelta = timedelta(hours=2),
) -> datetime:
    """The moment of the next attempt after `attempts` (aware, oldest first, not empty).

    The first open moment at least `min_delay` after the last attempt, in a part of the day
    not tried yet; once every part has been tried, any part but the last one's. Moments
    are taken on half-hours so that planned calls read well on a list.
    """
    if not attempts:
        raise ValueError("next_attempt needs at least one earlier attempt")
    last = attempts[-1]
    tried = {day_part(at, window) for at in attempts}
    if len(tried) == len(DAY_PARTS):
        tried = {day_part(last, window)}
    start = _first_open(_round_up(last + min_delay), window)
    candidate = start
    while candidate - start <= _HORIZON:
        # Every candidate is an open moment (`_first_open`): only its part of the day matters.
        if day_part(candidate, window) not in tried:
            return candidate
        candidate = _first_open(candidate + _STEP, window)
    # A window open in only one part of the day: the next open moment will have to do.
    return start


def _round_up(at: datetime) -> datetime:
    """The next half-hour at or after `at`."""
    whole = at.replace(second=0, microsecond=0)
    if whole < at:
        whole += timedelta(minutes=1)
    return whole + timedelta(minutes=-whole.minute % 30)

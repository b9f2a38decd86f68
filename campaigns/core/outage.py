"""A dependency's outage as one process sees it (PostgreSQL, Redis, the job queue).

Retries of a lost dependency must not flood the log: an `Outage` logs once when the
outage starts and once when it ends, spaces the tries with growing delays, and runs the
recovery steps registered with it when the dependency answers again. Telling a lost
database from a bug and waiting for it is `campaigns.dispatch.outages`'s business.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Outage"]

log = logging.getLogger(__name__)


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

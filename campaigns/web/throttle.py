"""Login throttling: too many failed logins from one address for one e-mail wait a while."""

from __future__ import annotations

import time


class LoginThrottle:
    """At most `limit` failed logins per (address, e-mail) within `window` seconds."""

    def __init__(self, limit: int = 5, window: float = 900) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, list[float]] = {}

    def _key(self, remote: str | None, email: str) -> str:
        return f"{remote}|{email.strip().lower()}"

    def blocked(self, remote: str | None, email: str) -> bool:
        now = time.monotonic()
        recent = [
            t for t in self._failures.get(self._key(remote, email), []) if now - t < self.window
        ]
        return len(recent) >= self.limit

    def failed(self, remote: str | None, email: str) -> None:
        key = self._key(remote, email)
        now = time.monotonic()
        recent = [t for t in self._failures.get(key, []) if now - t < self.window]
        recent.append(now)
        self._failures[key] = recent
        if len(self._failures) > 10_000:
            self._failures.pop(next(iter(self._failures)))

    def succeeded(self, remote: str | None, email: str) -> None:
        self._failures.pop(self._key(remote, email), None)

"""Login throttling that holds under concurrency and across processes.

An attempt *reserves* its place before the password is hashed: forty attempts sent at
once for one account cannot all pass a check made before any of them failed. Three
counters are reserved together, each over a fixed window: the account (guessing one
password), the client address (spraying one password over many e-mails) and all logins
(spraying from many addresses). A failed attempt keeps its reservation; a success gives
its place back and clears the account's count.

With Redis the counters are shared by every web process (one Lua script: atomic); without
it they live in this process's memory, bounded without ever forgetting a live lockout.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis


@dataclass(frozen=True)
class Limits:
    account: int = 5  # attempts per e-mail
    address: int = 20  # attempts per client address, whatever the e-mails
    overall: int = 300  # attempts in all: spraying from many addresses
    window: float = 900.0  # seconds


def _keys(remote: str | None, email: str) -> tuple[str, str, str]:
    # E-mails are personal data: the keys hold a digest of them, not the addresses.
    account = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    return f"account:{account}", f"address:{remote or '-'}", "overall"


class LoginThrottle:
    """In-process counters: one web process, no Redis."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._counts: dict[str, tuple[int, float]] = {}  # key -> (count, window end)
        # Every live key was made by an attempt the overall limit counted: twice that limit
        # (account and address keys), plus one, holds them all; only expired ones are dropped.
        self.max_entries = 2 * self.limits.overall + 1

    def _live(self, key: str, now: float) -> int:
        count, until = self._counts.get(key, (0, 0.0))
        return count if until > now else 0

    def _limits(self) -> tuple[int, int, int]:
        return self.limits.account, self.limits.address, self.limits.overall

    async def reserve(self, remote: str | None, email: str) -> bool:
        """Take a place for one attempt; False: too many, do not check the password."""
        # No await in here: the check and the reservation are one step on the event loop.
        now = time.monotonic()
        keys = _keys(remote, email)
        if any(self._live(k, now) >= limit for k, limit in zip(keys, self._limits(), strict=True)):
            return False
        if len(self._counts) + sum(k not in self._counts for k in keys) > self.max_entries:
            self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
            if len(self._counts) + sum(k not in self._counts for k in keys) > self.max_entries:
                return False  # full of live counts: refuse rather than forget one
        for key in keys:
            count, until = self._counts.get(key, (0, 0.0))
            if until <= now:
                count, until = 0, now + self.limits.window
            self._counts[key] = (count + 1, until)
        return True

    async def succeeded(self, remote: str | None, email: str) -> None:
        account, *shared = _keys(remote, email)
        self._counts.pop(account, None)
        for key in shared:
            count, until = self._counts.get(key, (0, 0.0))
            if count <= 1:
                self._counts.pop(key, None)
            else:
                self._counts[key] = (count - 1, until)


_RESERVE = """
local blocked = 0
for i = 1, 3 do
  local n = redis.call('INCR', KEYS[i])
  if n == 1 then redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
  if n > tonumber(ARGV[i + 1]) then blocked = 1 end
end
if blocked == 1 then
  for i = 1, 3 do redis.call('DECR', KEYS[i]) end
  return 0
end
return 1
"""

_SUCCEEDED = """
redis.call('DEL', KEYS[1])
for i = 2, 3 do
  if tonumber(redis.call('GET', KEYS[i]) or '0') > 0 then redis.call('DECR', KEYS[i]) end
end
return 1
"""


class RedisLoginThrottle(LoginThrottle):
    """The same counters in Redis, shared by every web process."""

    def __init__(self, redis: Redis, prefix: str, limits: Limits | None = None) -> None:
        super().__init__(limits)
        self.redis = redis
        self.prefix = f"{prefix}:login"

    def _redis_keys(self, remote: str | None, email: str) -> list[str]:
        return [f"{self.prefix}:{key}" for key in _keys(remote, email)]

    async def reserve(self, remote: str | None, email: str) -> bool:
        window_ms = int(self.limits.window * 1000)
        args = [str(window_ms), *(str(limit) for limit in self._limits())]
        allowed = await self.redis.eval(  # type: ignore[misc]
            _RESERVE, 3, *self._redis_keys(remote, email), *args
        )
        return bool(int(allowed))

    async def succeeded(self, remote: str | None, email: str) -> None:
        await self.redis.eval(_SUCCEEDED, 3, *self._redis_keys(remote, email))  # type: ignore[misc]

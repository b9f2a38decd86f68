"""Remember webhook nonces for a while, so a replayed signed request is refused.

Redis when several web processes serve the webhooks; memory for a single process or tests.
The TTL must cover twice the accepted timestamp skew (10 min for the default ±5 min).

`remember` keeps a fingerprint of the request with its nonce (the webhooks use the
signature): Vonage's identical retry of a request already stored is then told apart from a
replay of the nonce with other content, and answered 2xx instead of 401.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import Pipeline

__all__ = ["MemoryNonceStore", "NonceStore", "RedisNonceStore"]

DEFAULT_TTL_SECONDS = 600
# SET NX EX each nonce with its fingerprint; answer "" when set, else the fingerprint held
# ("1" for nonces recorded by `seen`, or before fingerprints were kept).
_REMEMBER = """
local found = {}
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, ARGV[i + 1], 'NX', 'EX', ARGV[1]) then
    found[i] = ''
  else
    found[i] = redis.call('GET', key) or ''
  end
end
return found
"""


class NonceStore(Protocol):
    """Records nonces; `seen` answers whether one was already recorded."""

    async def seen(self, nonce: str) -> bool:
        """Record nonce; return True if it was already there (a replay)."""
        ...

    async def remember(self, entries: Sequence[tuple[str, str]]) -> list[str | None]:
        """Record (nonce, fingerprint) pairs at once; for each, the fingerprint it was first
        recorded with, or None when it is new."""
        ...


class RedisNonceStore:
    """Nonces as Redis keys set with NX and an expiry: atomic across processes."""

    def __init__(
        self,
        redis: Redis,
        prefix: str = "campaigns:nonce:",
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
    ) -> None:
        if ttl_seconds < 1:
            raise ValueError("ttl_seconds must be at least 1")
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl_seconds

    async def seen(self, nonce: str) -> bool:
        # SET NX answers None when the key exists: whoever set it first saw it first.
        created = await self._redis.set(self._prefix + nonce, 1, nx=True, ex=self._ttl)
        return not created

    @property
    def redis(self) -> Redis:
        return self._redis

    def add_to(self, pipe: Pipeline, entries: Sequence[tuple[str, str]]) -> None:
        """Queue `remember` on a pipeline the caller sends with other work (one round trip);
        `read` interprets its result. One script for the whole batch: one command to
        encode and parse, not two per nonce."""
        keys = [self._prefix + nonce for nonce, _ in entries]
        pipe.eval(_REMEMBER, len(keys), *keys, str(self._ttl), *(fp for _, fp in entries))

    @staticmethod
    def read(result: Sequence[Any]) -> list[str | None]:
        """The outcome of `add_to`'s command: for each entry, None or the first fingerprint."""
        # The script answers "" for a new nonce (a Lua nil would cut the list short).
        return [
            (value.decode() if isinstance(value, bytes) else str(value)) or None for value in result
        ]

    async def remember(self, entries: Sequence[tuple[str, str]]) -> list[str | None]:
        if not entries:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            self.add_to(pipe, entries)
            (result,) = await pipe.execute()
        return self.read(result)


class MemoryNonceStore:
    """Nonces in a bounded in-process map; past max_entries the oldest are forgotten early."""

    def __init__(
        self,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        *,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_seconds <= 0 or max_entries < 1:
            raise ValueError("ttl_seconds and max_entries must be positive")
        self._ttl = ttl_seconds
        self._max_entries = max_entries
        self._clock = clock
        # Insertion order is expiry order, since every entry gets the same TTL.
        self._expiries: OrderedDict[str, float] = OrderedDict()
        self._fingerprints: dict[str, str] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._expiries)

    def seen_sync(self, nonce: str) -> bool:
        """Same as `seen`, usable as verify_signature's `nonce_seen` callback."""
        return self.remember_sync(nonce, "1") is not None

    def remember_sync(self, nonce: str, fingerprint: str) -> str | None:
        """Record a nonce; None if new, else the fingerprint it was first recorded with."""
        with self._lock:
            now = self._clock()
            while self._expiries:
                oldest, expiry = next(iter(self._expiries.items()))
                if expiry > now:
                    break
                del self._expiries[oldest]
                self._fingerprints.pop(oldest, None)
            if nonce in self._expiries:
                return self._fingerprints.get(nonce, "")
            self._expiries[nonce] = now + self._ttl
            self._fingerprints[nonce] = fingerprint
            while len(self._expiries) > self._max_entries:
                evicted, _ = self._expiries.popitem(last=False)
                self._fingerprints.pop(evicted, None)
            return None

    async def seen(self, nonce: str) -> bool:
        return self.seen_sync(nonce)

    async def remember(self, entries: Sequence[tuple[str, str]]) -> list[str | None]:
        return [self.remember_sync(nonce, fingerprint) for nonce, fingerprint in entries]

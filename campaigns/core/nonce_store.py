"""Remember webhook nonces for a while, so a replayed signed request is refused.

Redis when several web processes serve the webhooks; memory for a single process or tests.
The TTL must cover twice the accepted timestamp skew (10 min for the default ±5 min).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["MemoryNonceStore", "NonceStore", "RedisNonceStore"]

DEFAULT_TTL_SECONDS = 600


class NonceStore(Protocol):
    """Records nonces; `seen` answers whether one was already recorded."""

    async def seen(self, nonce: str) -> bool:
        """Record nonce; return True if it was already there (a replay)."""
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
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._expiries)

    def seen_sync(self, nonce: str) -> bool:
        """Same as `seen`, usable as verify_signature's `nonce_seen` callback."""
        with self._lock:
            now = self._clock()
            while self._expiries:
                oldest, expiry = next(iter(self._expiries.items()))
                if expiry > now:
                    break
                del self._expiries[oldest]
            if nonce in self._expiries:
                return True
            self._expiries[nonce] = now + self._ttl
            while len(self._expiries) > self._max_entries:
                self._expiries.popitem(last=False)
            return False

    async def seen(self, nonce: str) -> bool:
        return self.seen_sync(nonce)

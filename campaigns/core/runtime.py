"""What a process holds while it runs (settings, clock, queue, providers), built at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from campaigns.core.clock import Clock, utcnow
from campaigns.core.settings import Settings

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from campaigns.core.jobs import JobQueue
    from campaigns.core.nonce_store import NonceStore
    from campaigns.dispatch.rate_limit import RateLimiter
    from campaigns.rules.send_window import SendWindow
    from providers.base import EmailProvider, SmsProvider


@dataclass
class DispatchConfig:
    """How dispatch paces itself; read from the environment by the composition root."""

    batch_size: int = 200  # messages claimed at once by one lane
    concurrency: int = 16  # sends in flight per lane (and provider threads per process)
    lanes: int = 1  # lanes per run, at most one per process: the workers that share a run
    max_attempts: int = 5  # sends tried before a transient failure becomes final
    backoff_base: float = 15.0  # seconds before the first retry, doubled each time
    backoff_cap: float = 900.0
    heartbeat_ttl: float = 30.0  # a worker silent this long is dead: its claims are unconfirmed
    lane_budget: float = 60.0  # seconds a lane job works before handing over to a fresh job
    idle_poll: float = 2.0  # seconds between checks while another worker finishes its batch
    min_failure_sample: int = 50  # sends a lane sees before judging the failure rate


class Coordination(Protocol):
    """Who is alive, and exclusive leases: what workers of one deployment agree on."""

    worker_id: str

    async def alive(self, worker_ids: set[str]) -> set[str]:
        """The subset of worker ids whose process still beats."""
        ...

    async def workers(self) -> int:
        """How many worker processes beat right now (at least this one)."""
        ...

    async def acquire(self, key: str, token: str, ttl: float) -> bool:
        """Take (or renew, when `token` already holds it) the lease `key` for ttl seconds."""
        ...

    async def release(self, key: str, token: str) -> None: ...


@dataclass
class Runtime:
    settings: Settings
    clock: Clock = utcnow
    queue: JobQueue | None = None
    redis: Redis | None = None
    sms: SmsProvider | None = None
    email: EmailProvider | None = None
    dispatch: DispatchConfig = field(default_factory=DispatchConfig)
    rate_limiter: RateLimiter | None = None
    send_window: SendWindow | None = None
    nonce_store: NonceStore | None = None
    coordination: Coordination | None = None
    # Room for services the composition root adds.
    extras: dict[str, Any] = field(default_factory=dict)

"""What a process holds while it runs (settings, clock, queue, providers), built at start-up.

Every service is there: the composition root (`workers.runtime.build_runtime`) gives web
and worker processes real ones, `offline_runtime` gives the stand-ins of
`campaigns.core.null_services` to whatever uses the domain without sending. Redis alone
is optional: without it the queue, the rate limit and the nonces live in process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from campaigns.core.clock import Clock, utcnow
from campaigns.core.jobs import JobQueue
from campaigns.core.nonce_store import MemoryNonceStore, NonceStore
from campaigns.core.null_services import (
    NoCoordination,
    NoEmailProvider,
    NoQueue,
    NoRateLimit,
    NoSmsProvider,
)
from campaigns.core.process_state import ProcessState
from campaigns.core.settings import Settings
from campaigns.rules.send_window import SendWindow, parse_send_window
from providers.base import EmailProvider, SmsProvider

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from campaigns.dispatch.rate_limit import RateLimiter

__all__ = ["Coordination", "DispatchConfig", "Runtime", "offline_runtime"]


@dataclass
class DispatchConfig:
    """How dispatch paces itself; the composition root sets it from the Settings."""

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

    async def start(self) -> None:
        """Start beating (a worker's first heartbeat, then one in the background)."""
        ...

    async def stop(self) -> None: ...

    async def beat(self) -> None:
        """Beat now (after an outage of the shared store)."""
        ...

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


@dataclass(kw_only=True)
class Runtime:
    settings: Settings
    queue: JobQueue
    sms: SmsProvider
    email: EmailProvider
    rate_limiter: RateLimiter  # SMS parts; e-mail is not limited
    send_window: SendWindow  # the settings' one; a campaign may have its own
    nonce_store: NonceStore
    coordination: Coordination
    redis: Redis | None = None  # None: one process, no Redis
    clock: Clock = utcnow
    dispatch: DispatchConfig = field(default_factory=DispatchConfig)
    state: ProcessState = field(default_factory=ProcessState)


def offline_runtime(
    settings: Settings, *, clock: Clock = utcnow, queue: JobQueue | None = None
) -> Runtime:
    """A Runtime with no provider, no queue (unless given one), no limit and no other
    process: for benchmarks, tests and commands that use the domain without sending."""
    return Runtime(
        settings=settings,
        clock=clock,
        queue=queue if queue is not None else NoQueue(),
        sms=NoSmsProvider(),
        email=NoEmailProvider(),
        rate_limiter=NoRateLimit(),
        send_window=parse_send_window(settings.send_window, settings.timezone, settings.holidays),
        nonce_store=MemoryNonceStore(),
        coordination=NoCoordination(),
    )

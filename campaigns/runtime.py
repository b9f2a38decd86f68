"""What a process holds while it runs (settings, clock, queue, providers), built once by its composition root."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from campaigns.clock import Clock, utcnow
from campaigns.settings import Settings

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from campaigns.jobs import JobQueue
    from providers.base import EmailProvider, SmsProvider


@dataclass
class Runtime:
    settings: Settings
    clock: Clock = utcnow
    queue: JobQueue | None = None
    redis: Redis | None = None
    sms: SmsProvider | None = None
    email: EmailProvider | None = None
    # Room for services the composition root adds (rate limiter, nonce store, ...).
    extras: dict[str, Any] = field(default_factory=dict)

"""Stand-ins for the services a process does not have, so that no caller checks for None.

Web and worker processes get real services from the composition root
(`workers.runtime.build_runtime`); a benchmark, a test or a command that uses the domain
without sending gets these through `campaigns.core.runtime.offline_runtime`. Each one
does nothing visibly: a send fails with `NO_PROVIDER`, a job is refused as if already
queued, nothing is rate limited, and this process is the only one alive.
"""

from __future__ import annotations

from typing import Any

from providers.base import EmailRequest, Outcome, SendResult, SmsRequest

__all__ = [
    "NO_PROVIDER",
    "NoCoordination",
    "NoEmailProvider",
    "NoQueue",
    "NoRateLimit",
    "NoSmsProvider",
]

NO_PROVIDER = "campaigns:no-provider"
_NOT_SENT = SendResult(
    Outcome.FAILED,
    parts=0,
    reason=NO_PROVIDER,
    description="Aucun fournisseur d'envoi n'est configuré pour ce processus.",
)


class NoSmsProvider:
    name = "none"

    async def send_sms(self, req: SmsRequest) -> SendResult:
        return _NOT_SENT

    async def close(self) -> None:
        return None


class NoEmailProvider:
    name = "none"

    async def send_email(self, req: EmailRequest) -> SendResult:
        return _NOT_SENT

    async def close(self) -> None:
        return None


class NoQueue:
    """Queues nothing: callers see the answer of a job already queued (False)."""

    async def enqueue(
        self,
        function: str,
        *args: Any,
        job_id: str | None = None,
        defer_by: float | None = None,
    ) -> bool:
        return False

    async def close(self) -> None:
        return None


class NoRateLimit:
    """No limit at all, not even a pause after a throttle (the queue's back-off still
    spaces the retries)."""

    rate_per_second = 0.0

    async def reserve(self, units: int = 1) -> float:
        return 0.0

    async def wait(self, units: int = 1) -> None:
        return None

    async def penalise(self, pause: float, *, slow: bool = False) -> None:
        return None


class NoCoordination:
    """A process alone: it is the only worker alive and every lease is its own."""

    def __init__(self, worker_id: str = "local") -> None:
        self.worker_id = worker_id

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def beat(self) -> None:
        return None

    async def alive(self, worker_ids: set[str]) -> set[str]:
        return worker_ids & {self.worker_id}

    async def workers(self) -> int:
        return 1

    async def acquire(self, key: str, token: str, ttl: float) -> bool:
        return True

    async def release(self, key: str, token: str) -> None:
        return None

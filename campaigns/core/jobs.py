"""The job queue as the domain sees it: arq on Redis in production, in-process otherwise."""

from __future__ import annotations

from typing import Any, Protocol


class JobQueue(Protocol):
    async def enqueue(
        self,
        function: str,
        *args: Any,
        job_id: str | None = None,
        defer_by: float | None = None,
    ) -> bool:
        """Queue `function(ctx, *args)`; False when a job with that id is already queued."""
        ...

    async def close(self) -> None: ...

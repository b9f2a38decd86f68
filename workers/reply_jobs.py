"""Job functions for inbound replies: process one reply, and the cron that finalises long SMS."""

from __future__ import annotations

from typing import Any

from arq import Retry

from campaigns.replies import intake, routing


async def process_reply(ctx: dict[str, Any], reply_id: int) -> str | None:
    """Match, classify and act on a stored reply (idempotent: arq may run it twice)."""
    try:
        reply = await routing.process_reply(ctx["runtime"], int(reply_id))
    except intake.RetryLater as exc:
        raise Retry(defer=exc.defer) from exc
    return reply.label if reply is not None else None


async def finalise_incomplete_replies(ctx: dict[str, Any]) -> int:
    """Cron (every minute): assemble long SMS whose parts stopped coming, requeue lost replies."""
    return len(await intake.finalise_incomplete(ctx["runtime"]))


FUNCTIONS = (process_reply,)

"""What was sent, as the staff pages can show it without knowing which provider sent it."""

from __future__ import annotations

import asyncio
from typing import Any

from campaigns.core.runtime import Runtime
from providers.base import KeepsOutbox

OUTBOX_LIMIT = 200


async def console_outbox(
    runtime: Runtime, limit: int = OUTBOX_LIMIT
) -> list[dict[str, Any]] | None:
    """The last messages the console provider wrote, newest first; None when SMS really leave.

    Only the console provider keeps what it "sends"; with a real provider the campaign
    pages are where sent messages are followed.
    """
    if runtime.settings.sms_provider != "console" or not isinstance(runtime.sms, KeepsOutbox):
        return None
    # A file read: off the event loop, webhooks keep flowing while a large outbox is read.
    return await asyncio.to_thread(runtime.sms.read_outbox, limit)

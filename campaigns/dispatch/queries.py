"""What was sent, as the staff pages can show it without knowing which provider sent it."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from pathlib import Path
from typing import Any

from campaigns.core.settings import Settings

OUTBOX_LIMIT = 200
# The file the console providers append one JSON line to per message (providers/console.py
# writes it). The domain may not import a concrete provider, so the name is repeated here;
# tests/test_pages.py sends through the runtime's console provider and reads the message
# back on the page, so the writer and this reader cannot drift apart unnoticed.
OUTBOX_FILE = "outbox.jsonl"


async def console_outbox(
    settings: Settings, limit: int = OUTBOX_LIMIT
) -> list[dict[str, Any]] | None:
    """The last messages the console provider wrote, newest first; None when SMS really leave.

    Only the console provider keeps what it "sends" (in ``settings.outbox_dir``); with a
    real provider the campaign pages are where sent messages are followed.
    """
    if settings.sms_provider != "console":
        return None
    # A file read: off the event loop, webhooks keep flowing while a large outbox is read.
    return await asyncio.to_thread(_read_last, Path(settings.outbox_dir) / OUTBOX_FILE, limit)


def _read_last(path: Path, limit: int) -> list[dict[str, Any]]:
    if limit <= 0 or not path.exists():
        return []
    last: deque[str] = deque(maxlen=limit)
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                last.append(line)
    records = []
    for line in reversed(last):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            # A line cut by a crash mid-write: skip it rather than hide the whole outbox.
            continue
    return records

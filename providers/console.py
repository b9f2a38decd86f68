"""Development providers that write every message to a local outbox file instead of sending it."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import uuid
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from providers.base import EmailRequest, Outcome, SendResult, SmsRequest, estimate_sms_parts

__all__ = ["OUTBOX_FILE", "ConsoleEmailProvider", "ConsoleSmsProvider", "read_outbox"]

logger = logging.getLogger(__name__)

OUTBOX_FILE = "outbox.jsonl"

# One lock for the whole process: the SMS and e-mail providers share the file. Across
# processes each line is a single write() on an O_APPEND descriptor, which the kernel
# does not interleave with other appends on a local file.
_WRITE_LOCK = threading.Lock()


def _append_line(path: Path, record: dict[str, Any]) -> None:
    line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    with _WRITE_LOCK:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


class _Outbox:
    def __init__(self, outbox_dir: Path) -> None:
        self.dir = Path(outbox_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / OUTBOX_FILE

    async def write(
        self, channel: str, message_id: str, parts: int, fields: dict[str, Any]
    ) -> SendResult:
        provider_id = f"console-{uuid.uuid4()}"
        record = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "channel": channel,
            "message_id": message_id,
            "provider_id": provider_id,
            "parts": parts,
            **fields,
        }
        await asyncio.to_thread(_append_line, self.path, record)
        logger.info("console %s message %s written (%d part(s))", channel, message_id, parts)
        return SendResult(Outcome.SUBMITTED, provider_ids=(provider_id,), parts=parts)


class ConsoleSmsProvider:
    """Pretends to send SMS: appends them to `outbox_dir/outbox.jsonl`."""

    name = "console"

    def __init__(self, outbox_dir: Path) -> None:
        self._outbox = _Outbox(outbox_dir)

    def read_outbox(self, limit: int) -> list[dict[str, Any]]:
        return read_outbox(self._outbox.dir, limit)

    async def send_sms(self, req: SmsRequest) -> SendResult:
        parts = estimate_sms_parts(req.text, req.unicode)
        fields = {
            "to": req.to,
            "sender": req.sender,
            "text": req.text,
            "unicode": req.unicode,
        }
        return await self._outbox.write("sms", req.message_id, parts, fields)

    async def close(self) -> None:
        return None


class ConsoleEmailProvider:
    """Pretends to send e-mail: appends them to `outbox_dir/outbox.jsonl`."""

    name = "console"

    def __init__(self, outbox_dir: Path) -> None:
        self._outbox = _Outbox(outbox_dir)

    async def send_email(self, req: EmailRequest) -> SendResult:
        fields = {
            "to": req.to,
            "sender": req.sender,
            "subject": req.subject,
            "text": req.text,
            "html": req.html,
            "headers": dict(req.headers),
        }
        return await self._outbox.write("email", req.message_id, 1, fields)

    async def close(self) -> None:
        return None


def read_outbox(outbox_dir: Path, limit: int = 200) -> list[dict[str, Any]]:
    """The last `limit` records of the outbox, newest first (for a staff page)."""
    path = Path(outbox_dir) / OUTBOX_FILE
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

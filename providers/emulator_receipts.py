"""The emulator's delivery receipts: signed as Vonage signs them, posted late, retried a little.

Receipts wait in a bounded queue and a few workers post them once due, in the format
asked (JSON, form or query string), like Vonage's own callbacks: a receipt that cannot
be delivered after `dlr_retries` more tries is counted as a failure and dropped. Tries
are spaced by a doubling delay (0.1 s, at most `dlr_retry_cap`), or by the answer's
Retry-After when it is longer (a 503 while the application's database is away).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
import uuid
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import aiohttp
import vonage
from yarl import URL

if TYPE_CHECKING:
    from providers.emulator import EmulatorConfig

__all__ = ["DLR_FORMATS", "ReceiptPoster", "sign_receipt"]

logger = logging.getLogger(__name__)

DLR_FORMATS = ("json", "form", "get")
_FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}
_JSON_HEADERS = {"Content-Type": "application/json"}
_QUEUE_SIZE = 10_000


@lru_cache(maxsize=16)
def _sdk_signer(secret: str, method: str) -> vonage.Auth:
    # The SDK wants an api_key beside a signature secret; it plays no part in the HMAC.
    return vonage.Auth(api_key="emulator", signature_secret=secret, signature_method=method)


def sign_receipt(params: dict[str, str], secret: str, method: str) -> dict[str, str]:
    """Add timestamp, nonce and sig to a webhook payload as Vonage signs it.

    HMAC methods go through the SDK's own `Auth.sign_params`, so that whatever verifies
    our webhooks is cross-checked against Vonage's implementation; "md5hash" (the legacy
    default, absent from the SDK) is md5 over the same sorted `&key=value` string with
    the secret appended.
    """
    signed = {k: str(v) for k, v in params.items() if k != "sig"}
    signed["timestamp"] = str(int(time.time()))
    signed["nonce"] = str(uuid.uuid4())
    if method == "md5hash":
        base = "".join(
            f"&{key}={signed[key].replace('&', '_').replace('=', '_')}" for key in sorted(signed)
        )
        signed["sig"] = hashlib.md5((base + secret).encode("utf-8")).hexdigest()
    else:
        signed["sig"] = _sdk_signer(secret, method).sign_params(dict(signed))
    return signed


class ReceiptPoster:
    """Posts receipts to `config.dlr_url`, `dlr_concurrency` at a time; counts the outcomes."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.sent = 0
        self.failures = 0
        self.refusals: dict[int, int] = {}  # HTTP status -> answers that were not 2xx
        self._queue: asyncio.Queue[tuple[float, dict[str, str], str]] = asyncio.Queue(_QUEUE_SIZE)
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"emulator-dlr-{i}")
            for i in range(max(1, self.config.dlr_concurrency))
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    def reset_counts(self) -> None:
        self.sent = 0
        self.failures = 0
        self.refusals = {}

    def post_later(self, receipt: dict[str, str]) -> None:
        """Queue a receipt, due `dlr_delay_ms` from now; a full queue counts as a failure."""
        cfg = self.config
        due = asyncio.get_running_loop().time() + cfg.dlr_delay_ms / 1000
        try:
            self._queue.put_nowait((due, receipt, cfg.dlr_url or ""))
        except asyncio.QueueFull:
            self.failures += 1

    async def drain(self) -> None:
        """Wait until every queued receipt was posted (or given up)."""
        await self._queue.join()

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, receipt, url = await self._queue.get()
            try:
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await self._post(receipt, url)
            except Exception:  # a bug here must not kill the worker
                logger.exception("emulator: delivery receipt not sent")
                self.failures += 1
            finally:
                self._queue.task_done()

    async def _post(self, receipt: dict[str, str], url: str) -> None:
        cfg = self.config
        now = datetime.now(UTC)
        params = {
            **receipt,
            "scts": now.strftime("%y%m%d%H%M"),
            "message-timestamp": now.strftime("%Y-%m-%d %H:%M:%S"),
        }
        if cfg.dlr_signature_secret:
            params = sign_receipt(params, cfg.dlr_signature_secret, cfg.dlr_signature_method)
        assert self._session is not None
        # Encoded once, here: aiohttp's form and query builders cost more CPU than the
        # rest of a post, and the emulator shares the machine with what it measures.
        if cfg.dlr_format == "get":
            target: str | URL = URL(
                f"{url}{'&' if '?' in url else '?'}{urlencode(params)}", encoded=True
            )
            body, headers = None, None
        elif cfg.dlr_format == "form":
            target, body, headers = url, urlencode(params).encode(), _FORM_HEADERS
        else:
            target, body, headers = url, json.dumps(params).encode(), _JSON_HEADERS
        for attempt in range(cfg.dlr_retries + 1):
            wait = min(cfg.dlr_retry_cap, 0.1 * 2**attempt)
            try:
                method = "GET" if body is None else "POST"
                async with self._session.request(
                    method, target, data=body, headers=headers
                ) as response:
                    await response.read()
                    if response.status < 300:
                        self.sent += 1
                        return
                    self.refusals[response.status] = self.refusals.get(response.status, 0) + 1
                    header = response.headers.get("Retry-After", "").strip()
                    if header.isdigit():
                        wait = max(wait, min(float(header), cfg.dlr_retry_cap))
            except (aiohttp.ClientError, TimeoutError):
                pass
            if attempt < cfg.dlr_retries:
                await asyncio.sleep(wait)
        self.failures += 1

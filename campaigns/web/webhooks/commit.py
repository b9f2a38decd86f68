"""The webhooks' group commit: what a batch holds, how it is written, and its lifecycle.

Both webhooks submit their request to the process's one `GroupCommit`. A batch is
written with one multi-row INSERT per table (replies, parts, receipts), then one Redis
round trip records its nonces and queues its jobs. A request is answered once its rows
are committed: a 2xx means stored. If its rows could not be stored, it gets a 503 with
Retry-After (Vonage retries), and the other requests of the batch are not affected
unless they failed too. Redis failing after the commit changes nothing for the answer:
the rows are stored, and the sweeper and the minute's tick queue what was not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from campaigns.core.kept_connections import HeldConnections, Pin
from campaigns.core.runtime import Runtime
from campaigns.dispatch.receipt_store import request_apply
from campaigns.replies.intake import PROCESS_JOB, Received, job_id
from campaigns.replies.intake_batch import store_many, store_odd
from campaigns.web.errors import error_response
from campaigns.web.http import ApiRouter
from campaigns.web.keys import RUNTIME
from campaigns.web.webhooks.batcher import GroupCommit
from campaigns.web.webhooks.receipts_batch import store_receipts
from campaigns.web.webhooks.redis_batch import Job, remember_and_enqueue

__all__ = [
    "BATCHER",
    "Item",
    "Stored",
    "WebhookRouter",
    "flush",
    "install",
    "submit",
    "unavailable",
]

log = logging.getLogger(__name__)

Kind = Literal["inbound", "odd", "receipt"]
RETRY_AFTER = 5  # seconds


@dataclass(frozen=True)
class Item:
    """One webhook request to store: an InboundSms, a receipt, or an odd request's
    (params, problem); its nonce and the signature that fingerprints it ("" if unsigned)."""

    kind: Kind
    body: Any
    nonce: str = ""
    fingerprint: str = ""


@dataclass(frozen=True)
class Stored:
    """A request's rows are committed. `replayed`: its nonce was first used by another
    request (an identical retry of a stored request is not a replay)."""

    duplicate: bool
    replayed: bool = False


BATCHER = web.AppKey("webhook_batcher", GroupCommit)
HELD = web.AppKey("webhook_connections", HeldConnections)


async def flush(
    runtime: Runtime, items: Sequence[Item], held: HeldConnections | None = None
) -> list[Stored | BaseException]:
    """Write one batch; a result per item, an exception for those whose rows failed.

    `held`: connections kept from one batch to the next (the app's batcher has some): the
    replies and receipts are written on one of them rather than through the pool."""
    now = runtime.clock()
    results: list[Stored | BaseException | None] = [None] * len(items)
    inbound: list[int] = []
    receipts: list[int] = []
    odd: list[int] = []
    for index, item in enumerate(items):
        kind = item.kind
        if kind == "receipt":
            receipts.append(index)
        elif kind == "inbound":
            inbound.append(index)
        else:
            odd.append(index)
    stored_inbound: list[Received] | BaseException = []
    stored_receipts: list[str] | BaseException = []
    async with held.pinned() if held is not None else contextlib.nullcontext(Pin()) as pin:
        if inbound and receipts:
            outcomes: tuple[Any, Any] = await asyncio.gather(
                store_many([items[i].body for i in inbound], now=now),
                store_receipts([items[i].body for i in receipts], now),
                return_exceptions=True,
            )
            stored_inbound, stored_receipts = outcomes
        elif inbound:
            # One kind only (the usual batch): awaited here, no task made for it.
            try:
                stored_inbound = await store_many([items[i].body for i in inbound], now=now)
            except Exception as exc:
                stored_inbound = exc
        elif receipts:
            try:
                stored_receipts = await store_receipts([items[i].body for i in receipts], now)
            except Exception as exc:
                stored_receipts = exc
        pin.failed_statement = isinstance(stored_inbound, BaseException) or isinstance(
            stored_receipts, BaseException
        )
    jobs: dict[str, Job] = {}
    _settle(results, inbound, stored_inbound, _received_duplicate)
    if not isinstance(stored_inbound, BaseException):
        for received in stored_inbound:
            _queue_reply(jobs, received)
    _settle(results, receipts, stored_receipts, _receipt_duplicate)
    for i in odd:  # rare: one at a time, outside the hot path
        try:
            params, problem = items[i].body
            results[i] = Stored((await store_odd(params, problem, runtime=runtime)).duplicate)
        except Exception as exc:
            log.warning("odd webhook request not stored: %r", exc)
            results[i] = exc
    await _after_commit(runtime, items, results, list(jobs.values()), bool(receipts))
    return [r if r is not None else RuntimeError("not written") for r in results]


def _received_duplicate(received: Received) -> bool:
    return received.duplicate


def _receipt_duplicate(outcome: str) -> bool:
    return outcome == "duplicate"


_STORED = {False: Stored(False), True: Stored(True)}  # immutable: shared by every request


def _settle(
    results: list[Stored | BaseException | None],
    indexes: list[int],
    outcome: Sequence[Any] | BaseException,
    duplicate: Any,
) -> None:
    if isinstance(outcome, BaseException):
        if indexes:
            log.warning("webhook batch: %d requests not stored: %r", len(indexes), outcome)
        for i in indexes:
            results[i] = outcome
        return
    for position, i in enumerate(indexes):
        results[i] = _STORED[bool(duplicate(outcome[position]))]


def _queue_reply(jobs: dict[str, Job], received: Received) -> None:
    if received.reply_id is not None:
        key = job_id(received.reply_id)
        jobs[key] = (PROCESS_JOB, (received.reply_id,), key)


async def _after_commit(
    runtime: Runtime,
    items: Sequence[Item],
    results: list[Stored | BaseException | None],
    jobs: list[Job],
    any_receipt: bool,
) -> None:
    """Nonces and jobs of what was stored, in one Redis round trip; best effort."""
    signed = [i for i, item in enumerate(items) if item.nonce and isinstance(results[i], Stored)]
    nonces = [(items[i].nonce, items[i].fingerprint) for i in signed]
    work: list[Any] = []
    if nonces or jobs:
        work.append(remember_and_enqueue(runtime, runtime.nonce_store, nonces, jobs))
    if any_receipt:
        # Coalesced by receipt_store: one job per period and process, whatever the batches.
        work.append(request_apply(runtime))
    if not work:
        return
    outcomes = await asyncio.gather(*work, return_exceptions=True)
    first = outcomes[0] if nonces or jobs else None
    if isinstance(first, BaseException):
        # Stored all the same: answering 2xx is right. A replay goes unnoticed (storing is
        # idempotent); the jobs are queued by the sweeper (replies) or the tick (receipts).
        log.warning("webhook batch: Redis unavailable after the commit: %r", first)
        return
    for i, before in zip(signed, first or [], strict=False):
        stored = results[i]
        assert isinstance(stored, Stored)
        if before is not None and before != items[i].fingerprint:
            results[i] = Stored(stored.duplicate, replayed=True)


async def submit(request: web.Request, item: Item) -> Stored:
    """Store a request through the app's batcher (or alone, outside an app's lifecycle)."""
    batcher = request.app.get(BATCHER)
    if batcher is not None:
        return await batcher.submit(item)  # type: ignore[no-any-return]
    (result,) = await flush(request.app[RUNTIME], [item])
    if isinstance(result, BaseException):
        raise result
    return result


def install(app: web.Application) -> None:
    """One batcher for both webhooks, started and stopped with the app (idempotent)."""
    if BATCHER in app:
        return
    runtime = app[RUNTIME]
    held = HeldConnections()

    async def write(items: Sequence[Item]) -> list[Stored | BaseException]:
        return await flush(runtime, items, held)

    # Made here, before the app is frozen; started by its cleanup context.
    app[BATCHER] = GroupCommit(write, name="webhooks")
    app[HELD] = held
    app.cleanup_ctx.append(_lifecycle)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    batcher = app[BATCHER]
    await batcher.start()
    try:
        yield
    finally:
        try:
            await batcher.stop()
        finally:
            # Back to the pool before it closes (it waits for every connection out).
            await app[HELD].close()


class WebhookRouter(ApiRouter):
    """An ApiRouter whose routes come with the batcher they write through."""

    def add_to(self, app: web.Application) -> None:
        super().add_to(app)
        install(app)


def unavailable(request: web.Request) -> web.Response:
    """Not stored (the database is away): Vonage retries after Retry-After."""
    response = error_response(
        request, 503, "unavailable", "enregistrement impossible pour l'instant, réessayez"
    )
    response.headers["Retry-After"] = str(RETRY_AFTER)
    return response

"""Claims on queued messages: taking a batch, dropping opted-out addresses, giving claims back.

A claim moves a message `queued -> sending` with `claimed_by` = the worker and one more
attempt. `handed_at` (set just before the provider call, see `campaigns.dispatch.lanes`)
decides what a claim left behind becomes: never handed over, it goes back to `queued`
with its attempt given back; handed over, it may have left and becomes `unconfirmed`
(never re-sent; a delivery receipt settles it, see `campaigns.dispatch.receipts`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.expressions import F, Q
from tortoise.transactions import in_transaction

from campaigns.core.runtime import Runtime
from campaigns.models import Campaign, CampaignStatus, Message, MessageStatus
from campaigns.registry.optouts import normalise_address, opted_out_among

__all__ = [
    "UNCONFIRMED_TEXT",
    "Claimed",
    "claim_batch",
    "recover_stale_claims",
    "release_claims",
    "skip_opted_out",
]

log = logging.getLogger(__name__)

M = MessageStatus
_CLAIM_FIELDS = (
    "id",
    "run_id",
    "person_id",
    "channel",
    "address",
    "subject",
    "text",
    "html",
    "encoding",
    "segments",
    "attempts",
)
UNCONFIRMED_TEXT = (
    "Envoi interrompu : le message est peut-être parti ; il n'est pas renvoyé, "
    "un accusé de réception le confirmera"
)


@dataclass(frozen=True)
class Claimed:
    """One claimed message: what the provider needs, nothing more."""

    id: int
    run_id: int
    person_id: int | None
    channel: str
    address: str | None
    subject: str | None
    text: str
    html: str | None
    encoding: str | None
    segments: int
    attempts: int  # including this one


async def claim_batch(run_id: int, worker_id: str, limit: int, now: datetime) -> list[Claimed]:
    """Move up to `limit` due queued messages of the run to `sending`, claimed by worker_id.

    PostgreSQL: `FOR UPDATE SKIP LOCKED`, so concurrent workers take disjoint batches.
    SQLite (one process): the lock is dropped and tortoise serialises transactions.
    """
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    async with in_transaction() as conn:
        rows = (
            await Message.filter(run_id=run_id, status=M.QUEUED)
            .filter(due)
            .order_by("id")
            .limit(limit)
            .select_for_update(skip_locked=True)
            .only(*_CLAIM_FIELDS)
            .using_db(conn)
        )
        if not rows:
            return []
        await (
            Message.filter(id__in=[row.id for row in rows], status=M.QUEUED)
            .using_db(conn)
            .update(
                status=M.SENDING,
                claimed_by=worker_id,
                attempts=F("attempts") + 1,
                handed_at=None,
            )
        )
    return [
        Claimed(
            id=row.id,
            run_id=run_id,
            person_id=row.person_id,
            channel=row.channel,
            address=row.address,
            subject=row.subject,
            text=row.text,
            html=row.html,
            encoding=row.encoding,
            segments=max(1, row.segments or 1),
            attempts=row.attempts + 1,
        )
        for row in rows
    ]


async def skip_opted_out(batch: list[Claimed], worker_id: str, now: datetime) -> list[Claimed]:
    """Drop the messages whose address opted out since launch: STOP wins over a running campaign."""
    by_address = {normalise_address(m.address): m for m in batch if m.address}
    stopped = await opted_out_among(list(by_address))
    if not stopped:
        return batch
    ids = [by_address[address].id for address in stopped]
    await Message.filter(id__in=ids, claimed_by=worker_id, status=M.SENDING).update(
        status=M.SKIPPED, skip_reason="opted_out", claimed_by=None, settled_at=now
    )
    return [m for m in batch if m.id not in set(ids)]


# --- stuck claims -------------------------------------------------------------------------------


async def release_claims(worker_id: str, ids: list[int], not_called: set[int]) -> tuple[int, int]:
    """Settle `worker_id`'s claims among `ids` that are still `sending` after a batch went wrong.

    A claim never handed over (or handed over, but whose provider call is known not to
    have started: `not_called`) goes back to `queued` with its attempt given back; any
    other may have left and becomes `unconfirmed`. Returns (requeued, unconfirmed).
    """
    if not ids:
        return 0, 0
    mine = Message.filter(id__in=ids, claimed_by=worker_id, status=M.SENDING)
    back = Q(handed_at__isnull=True) | Q(id__in=sorted(not_called & set(ids)))
    requeued = await mine.filter(back).update(
        status=M.QUEUED, claimed_by=None, handed_at=None, attempts=F("attempts") - 1
    )
    left = Message.filter(id__in=ids, claimed_by=worker_id, status=M.SENDING)
    uncertain = await left.values_list("id", flat=True)
    unconfirmed = await left.update(status=M.UNCONFIRMED, error=UNCONFIRMED_TEXT)
    if unconfirmed:
        log.warning("worker %s: unconfirmed after an interruption: %s", worker_id, uncertain[:20])
    return requeued, unconfirmed


async def recover_stale_claims(runtime: Runtime, run_ids: list[int] | None = None) -> int:
    """Settle what dead workers left in `sending`; returns how many messages it settled.

    Never handed to the provider (`handed_at` null): back to `queued`, the attempt given
    back, sent later by a live worker. Handed over: `unconfirmed`, never re-sent.
    """
    if run_ids is None:
        # Only campaigns that can hold claims: the (campaign_id, status) index does the rest.
        campaign_ids = await Campaign.filter(
            status__in=[CampaignStatus.RUNNING, CampaignStatus.PAUSED, CampaignStatus.CANCELLED]
        ).values_list("id", flat=True)
        scope = Message.filter(campaign_id__in=list(campaign_ids), status=M.SENDING)
    else:
        scope = Message.filter(run_id__in=run_ids, status=M.SENDING)
    found: list[Any] = await scope.distinct().values_list("claimed_by", flat=True)
    claimers: set[str | None] = set(found)
    if not claimers:
        return 0
    named = {c for c in claimers if c}
    dead = named - await runtime.coordination.alive(named)
    query = Q(claimed_by__in=sorted(dead)) if dead else Q(id__in=[])
    if None in claimers or "" in claimers:
        query |= Q(claimed_by__isnull=True) | Q(claimed_by="")
    requeued = await scope.filter(query, handed_at__isnull=True).update(
        status=M.QUEUED, claimed_by=None, attempts=F("attempts") - 1
    )
    unconfirmed = await scope.filter(query).update(status=M.UNCONFIRMED, error=UNCONFIRMED_TEXT)
    if requeued:
        log.warning(
            "%d message(s) claimed by a stopped worker but never sent: queued again", requeued
        )
    if unconfirmed:
        log.warning(
            "%d message(s) handed over by a stopped worker are now unconfirmed", unconfirmed
        )
    return requeued + unconfirmed

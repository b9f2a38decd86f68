"""Recording a batch's outcomes: a few set-based updates, retries spaced by a jittered backoff.

Failure texts are the providers' own French descriptions (`SendResult.description`),
stored with the reason code after them; dispatch knows no provider's codes.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from campaigns.core.runtime import Runtime
from campaigns.dispatch.claims import Claimed
from campaigns.models import Message, MessagePart, MessageStatus, Person
from providers.base import Outcome, SendResult

__all__ = ["UNDESCRIBED", "BatchTally", "backoff", "failure_text", "record_results"]

M = MessageStatus
# What a failure reads when its provider gave no description (or it never reached one).
UNDESCRIBED = "erreur du fournisseur"


def failure_text(result: SendResult) -> str:
    """The short French description of a failed, retried or uncertain send."""
    return result.description or UNDESCRIBED


def _error_text(result: SendResult, prefix: str = "") -> str:
    text = f"{prefix}{failure_text(result)}"
    if result.reason:
        text = f"{text} ({result.reason})"
    return text[:255]


def backoff(attempts: int, base: float, cap: float, retry_after: float | None = None) -> float:
    """Seconds before the next try: the provider's word, else exponential with equal jitter."""
    if retry_after is not None and retry_after > 0:
        return min(cap, retry_after)
    delay = min(cap, base * 2 ** max(0, attempts - 1))
    return delay / 2 + random.uniform(0, delay / 2)


@dataclass
class BatchTally:
    submitted: int = 0
    failed: int = 0
    unconfirmed: int = 0
    retried: int = 0


async def record_results(
    runtime: Runtime, worker_id: str, results: list[tuple[Claimed, SendResult]], now: datetime
) -> tuple[BatchTally, Counter[str]]:
    """Write a batch's outcomes with a few set-based updates; return tallies and failure reasons."""
    cfg = runtime.dispatch
    tally = BatchTally()
    reasons: Counter[str] = Counter()
    submitted: dict[Decimal | None, list[int]] = defaultdict(list)
    failed: dict[str, list[int]] = defaultdict(list)
    unconfirmed: dict[str, list[int]] = defaultdict(list)
    retry: dict[tuple[int, float | None], list[int]] = defaultdict(list)
    parts: list[MessagePart] = []
    contacted: list[int] = []
    for message, result in results:
        per_part = None
        if result.price is not None and result.provider_ids:
            per_part = result.price / len(result.provider_ids)
        parts.extend(
            MessagePart(message_id=message.id, provider_message_id=pid[:64], price=per_part)
            for pid in result.provider_ids
            if pid
        )
        if result.outcome is Outcome.SUBMITTED:
            submitted[result.price].append(message.id)
            if message.person_id is not None:
                contacted.append(message.person_id)
        elif result.outcome is Outcome.FAILED:
            failed[_error_text(result)].append(message.id)
            reasons[failure_text(result)] += 1
        elif result.outcome is Outcome.UNCONFIRMED:
            unconfirmed[_error_text(result, "issue incertaine : ")].append(message.id)
        elif message.attempts >= cfg.max_attempts:
            prefix = f"abandon après {message.attempts} tentatives : "
            failed[_error_text(result, prefix)].append(message.id)
            reasons[failure_text(result)] += 1
        else:
            retry[(message.attempts, result.retry_after)].append(message.id)
    tally.submitted = sum(len(ids) for ids in submitted.values())
    tally.failed = sum(len(ids) for ids in failed.values())
    tally.unconfirmed = sum(len(ids) for ids in unconfirmed.values())
    tally.retried = sum(len(ids) for ids in retry.values())

    mine = {"claimed_by": worker_id, "status__in": [M.SENDING, M.UNCONFIRMED]}
    if parts:
        # A receipt can beat us to it and create its part first: keep that one.
        await MessagePart.bulk_create(parts, batch_size=500, ignore_conflicts=True)
    for price, ids in submitted.items():
        await Message.filter(id__in=ids, **mine).update(
            status=M.SUBMITTED, price=price, sent_at=now, error=None
        )
        if price is not None:
            # Messages a receipt got to first keep its status, and take the price.
            await Message.filter(id__in=ids, price__isnull=True).update(price=price)
    for error, ids in failed.items():
        # The provider's refusal stands even if a receipt for an accepted part came first.
        await Message.filter(id__in=ids, claimed_by=worker_id).update(
            status=M.FAILED, error=error, settled_at=None
        )
    for error, ids in unconfirmed.items():
        await Message.filter(id__in=ids, **mine).update(
            status=M.UNCONFIRMED, error=error, sent_at=now
        )
    for (attempts, retry_after), ids in retry.items():
        delay = backoff(attempts, cfg.backoff_base, cfg.backoff_cap, retry_after)
        await Message.filter(id__in=ids, claimed_by=worker_id, status=M.SENDING).update(
            status=M.QUEUED, next_attempt_at=now + timedelta(seconds=delay), claimed_by=None
        )
    if contacted:
        await Person.filter(id__in=contacted).update(last_contacted_at=now)
    return tally, reasons

"""Dispatch: claim queued messages in batches, send within rate and window, record in bulk.

The life of a batch: check the campaign is running and the window open -> claim
(`queued -> sending`, attempts + 1, `claimed_by` = this worker) -> wait on the shared
rate limit and call the provider, a bounded number at a time -> record every outcome
with a few set-based updates. A message is handed to the provider at most once per
claim, and a claim left in `sending` by a dead worker becomes `unconfirmed`, never
`queued` again: a delivery receipt settles it later (see `campaigns.receipts`).

A run is worked by one or more *lanes* (jobs), at most one per worker process, each
holding a lease on its slot; `dispatch_run` starts them and lanes hand over to fresh
jobs after `lane_budget` seconds so that no job outlives the queue's timeout.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import secrets
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from tortoise.expressions import F, Q
from tortoise.functions import Min
from tortoise.transactions import in_transaction

from campaigns import campaign_service
from campaigns.models import (
    Campaign,
    CampaignRun,
    CampaignStatus,
    Message,
    MessagePart,
    MessageStatus,
    Person,
)
from campaigns.optouts import normalise_address, opted_out_among, unsubscribe_url
from campaigns.runtime import Runtime
from campaigns.send_window import SendWindow, parse_send_window
from providers.base import EmailRequest, Outcome, SendResult, SmsRequest

__all__ = [
    "LaneResult",
    "claim_batch",
    "describe_failure",
    "kick_running_runs",
    "recover_stale_claims",
    "run_lane",
    "start_run_dispatch",
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
_MAX_BOUNCES = 10  # a lane that finds its process busy with the run tries another process
_BOUNCE_DELAY = 0.5
UNCONFIRMED_TEXT = (
    "Envoi interrompu : le message est peut-être parti ; il n'est pas renvoyé, "
    "un accusé de réception le confirmera"
)


# --- failure reasons in French --------------------------------------------------------------

_VONAGE_STATUS = {
    "1": "débit dépassé chez Vonage",
    "2": "paramètres manquants",
    "3": "numéro invalide",
    "4": "identifiants Vonage refusés",
    "5": "erreur interne de Vonage",
    "6": "message refusé",
    "7": "numéro bloqué",
    "8": "compte Vonage bloqué",
    "9": "quota Vonage dépassé",
    "12": "message trop long",
    "14": "signature refusée",
    "15": "expéditeur refusé",
    "29": "destination non autorisée",
    "33": "numéro désactivé",
}
_VONAGE_OTHER = {
    "read-timeout": "pas de réponse de Vonage",
    "connection-lost": "connexion perdue pendant l'envoi",
    "unreadable-response": "réponse de Vonage illisible",
    "unexpected-error": "erreur inattendue pendant l'envoi",
    "connect-timeout": "Vonage injoignable",
    "connect-failed": "Vonage injoignable",
    "tls": "connexion sécurisée à Vonage impossible",
    "bad-host": "adresse de l'API Vonage invalide",
    "invalid-request": "numéro ou texte invalide",
}
_HTTP = {"401": "identifiants Vonage refusés", "403": "accès refusé par Vonage"}
_PARTIAL = re.compile(r"partial (\d+)/(\d+) (\S+)")


def describe_failure(reason: str | None) -> str:
    """A short French description of a provider's reason code ("vonage:7 Number Barred")."""
    if not reason:
        return "erreur du fournisseur"
    provider, _, rest = reason.partition(":")
    word = rest.split(" ", 1)[0]
    if provider == "vonage":
        partial = _PARTIAL.match(rest)
        if partial:
            sent, total, code = partial.groups()
            why = _VONAGE_STATUS.get(code, f"erreur {code}")
            return f"envoi partiel ({sent}/{total} parties) : {why}"
        if word in _VONAGE_STATUS:
            return _VONAGE_STATUS[word]
        if word.startswith("http-"):
            code = word.removeprefix("http-")
            if code in _HTTP:
                return _HTTP[code]
            return "trop de requêtes chez Vonage" if code == "429" else "Vonage indisponible"
        return _VONAGE_OTHER.get(word, "erreur Vonage")
    if provider == "smtp":
        if word.startswith("5"):
            return "adresse refusée par le serveur de messagerie"
        if word.startswith("4"):
            return "serveur de messagerie temporairement indisponible"
        if word == "lost-in-data":
            return "connexion perdue pendant l'envoi"
        return "serveur de messagerie injoignable"
    return "erreur du fournisseur"


def _error_text(reason: str | None, prefix: str = "") -> str:
    text = f"{prefix}{describe_failure(reason)}"
    if reason:
        text = f"{text} ({reason})"
    return text[:255]


# --- claiming ---------------------------------------------------------------------------------


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
            .update(status=M.SENDING, claimed_by=worker_id, attempts=F("attempts") + 1)
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


# --- recording ----------------------------------------------------------------------------------


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
            failed[_error_text(result.reason)].append(message.id)
            reasons[describe_failure(result.reason)] += 1
        elif result.outcome is Outcome.UNCONFIRMED:
            unconfirmed[_error_text(result.reason, "issue incertaine : ")].append(message.id)
        elif message.attempts >= cfg.max_attempts:
            prefix = f"abandon après {message.attempts} tentatives : "
            failed[_error_text(result.reason, prefix)].append(message.id)
            reasons[describe_failure(result.reason)] += 1
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


# --- stuck claims -------------------------------------------------------------------------------


async def recover_stale_claims(runtime: Runtime, run_ids: list[int] | None = None) -> int:
    """Messages left in `sending` by a dead worker become `unconfirmed` (never re-sent)."""
    assert runtime.coordination is not None
    if run_ids is None:
        # Only campaigns that can hold claims: the (campaign_id, status) index does the rest.
        campaign_ids = await Campaign.filter(
            status__in=[CampaignStatus.RUNNING, CampaignStatus.PAUSED, CampaignStatus.CANCELLED]
        ).values_list("id", flat=True)
        scope = Message.filter(campaign_id__in=list(campaign_ids), status=M.SENDING)
    else:
        scope = Message.filter(run_id__in=run_ids, status=M.SENDING)
    claimers = set(await scope.distinct().values_list("claimed_by", flat=True))
    if not claimers:
        return 0
    named = {c for c in claimers if c}
    dead = named - await runtime.coordination.alive(named)
    query = Q(claimed_by__in=sorted(dead)) if dead else Q(id__in=[])
    if None in claimers or "" in claimers:
        query |= Q(claimed_by__isnull=True) | Q(claimed_by="")
    count = await scope.filter(query).update(status=M.UNCONFIRMED, error=UNCONFIRMED_TEXT)
    if count:
        log.warning("%d message(s) left in sending by a stopped worker are now unconfirmed", count)
    return count


# --- lanes --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LaneResult:
    """Why a lane stopped, and when the run wants looking at again (None: not by this lane)."""

    reason: str  # done, paused, cancelled, stopped, window, retry_later, waiting, budget, gone
    wake_at: datetime | None = None
    sent: int = 0


class Lane:
    """One worker's share of a run: batches until the run is done, stopped or must wait."""

    def __init__(self, runtime: Runtime, run_id: int) -> None:
        self.runtime = runtime
        self.run_id = run_id
        self.worker_id = runtime.coordination.worker_id if runtime.coordination else "local"
        self.cfg = runtime.dispatch
        self.campaign: Campaign | None = None
        self.window: SendWindow | None = runtime.send_window
        self.sender = runtime.settings.sms_sender
        self.tried = 0
        self.failed = 0
        self.reasons: Counter[str] = Counter()
        self.sent = 0

    async def prepare(self) -> bool:
        run = await CampaignRun.get_or_none(id=self.run_id)
        if run is None:
            return False
        self.campaign = await Campaign.get(id=run.campaign_id)  # type: ignore[attr-defined]
        settings = self.runtime.settings
        if self.campaign.send_window:
            self.window = parse_send_window(
                self.campaign.send_window, settings.timezone, settings.holidays
            )
        if self.window is None:
            self.window = parse_send_window(
                settings.send_window, settings.timezone, settings.holidays
            )
        self.sender = campaign_service.sender_of(self.campaign, settings)
        return True

    def _batch_limit(self) -> int:
        limit = self.cfg.batch_size
        rate = self.runtime.settings.send_rate
        if rate > 0:
            # About ten seconds of sending per batch, so that a pause takes effect soon.
            limit = min(limit, max(1, int(rate * 10)))
        return limit

    async def step(self) -> LaneResult | None:
        """One batch; a LaneResult when the lane should stop, None to go on."""
        assert self.campaign is not None and self.window is not None
        status = await Campaign.filter(id=self.campaign.id).values_list("status", flat=True)
        now = self.runtime.clock()
        if not status:
            return LaneResult("gone")
        if status[0] != CampaignStatus.RUNNING:
            if status[0] == CampaignStatus.CANCELLED:
                await Message.filter(run_id=self.run_id, status=M.QUEUED).update(
                    status=M.CANCELLED, settled_at=now
                )
            reasons = {CampaignStatus.PAUSED: "paused", CampaignStatus.CANCELLED: "cancelled"}
            return LaneResult(reasons.get(status[0], "stopped"))
        if not self.window.is_open(now):
            return LaneResult("window", self.window.next_open(now))
        batch = await claim_batch(self.run_id, self.worker_id, self._batch_limit(), now)
        if not batch:
            return await self._idle(now)
        batch = await skip_opted_out(batch, self.worker_id, now)
        results = await self._send(batch)
        tally, reasons = await record_results(
            self.runtime, self.worker_id, results, self.runtime.clock()
        )
        self.sent += tally.submitted
        self.tried += tally.submitted + tally.failed + tally.unconfirmed
        self.failed += tally.failed
        self.reasons.update(reasons)
        if await self._auto_pause():
            return LaneResult("paused")
        return None

    async def _idle(self, now: datetime) -> LaneResult:
        """Nothing to claim: wait for retries or other workers, or close the run."""
        queued = Message.filter(run_id=self.run_id, status=M.QUEUED)
        due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
        poll = now + timedelta(seconds=self.cfg.idle_poll)
        if await queued.filter(due).exists():
            return LaneResult("waiting", poll)  # locked by another worker's claim right now
        if await Message.filter(run_id=self.run_id, status=M.SENDING).exists():
            await recover_stale_claims(self.runtime, [self.run_id])
            if await Message.filter(run_id=self.run_id, status=M.SENDING).exists():
                return LaneResult("waiting", poll)
        earliest = await queued.annotate(first=Min("next_attempt_at")).values_list(
            "first", flat=True
        )
        if earliest and earliest[0] is not None:
            return LaneResult("retry_later", earliest[0])
        await campaign_service.finish_run(self.run_id, now)
        return LaneResult("done")

    async def _send(self, batch: list[Claimed]) -> list[tuple[Claimed, SendResult]]:
        semaphore = asyncio.Semaphore(self.cfg.concurrency)

        async def one(message: Claimed) -> tuple[Claimed, SendResult]:
            async with semaphore:
                return message, await self._send_one(message)

        return list(await asyncio.gather(*(one(m) for m in batch)))

    async def _send_one(self, message: Claimed) -> SendResult:
        runtime = self.runtime
        if not message.address:
            return SendResult(Outcome.FAILED, parts=0, reason="campaigns:no-address")
        try:
            if message.channel == "sms":
                if runtime.rate_limiter is not None:
                    await runtime.rate_limiter.wait(message.segments)
                assert runtime.sms is not None, "no SMS provider"
                return await runtime.sms.send_sms(
                    SmsRequest(
                        message_id=str(message.id),
                        to=message.address,
                        sender=self.sender,
                        text=message.text,
                        unicode=(message.encoding or "").upper().startswith("UCS"),
                    )
                )
            if runtime.rate_limiter is not None:
                await runtime.rate_limiter.wait(1)
            assert runtime.email is not None, "no e-mail provider"
            return await runtime.email.send_email(self._email(message))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # We cannot tell whether it left: never re-send blindly.
            log.exception("message %s: provider error", message.id)
            return SendResult(Outcome.UNCONFIRMED, parts=0, reason=f"error:{type(exc).__name__}")

    def _email(self, message: Claimed) -> EmailRequest:
        settings = self.runtime.settings
        headers: dict[str, str] = {}
        if message.address:
            url = unsubscribe_url(settings.public_url, settings.signing_key, message.address)
            headers["List-Unsubscribe"] = f"<{url}>"
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        return EmailRequest(
            message_id=str(message.id),
            to=message.address or "",
            sender=settings.email_sender,
            subject=message.subject or "",
            text=message.text,
            html=message.html,
            headers=headers,
        )

    async def _auto_pause(self) -> bool:
        threshold = self.runtime.settings.failure_pause_threshold
        if self.tried < self.cfg.min_failure_sample or self.failed / self.tried <= threshold:
            return False
        assert self.campaign is not None
        rate = round(100 * self.failed / self.tried)
        main = self.reasons.most_common(1)[0][0] if self.reasons else "erreur du fournisseur"
        reason = f"Mise en pause automatique : {rate} % d'échecs ({main})"[:255]
        paused = await Campaign.filter(id=self.campaign.id, status=CampaignStatus.RUNNING).update(
            status=CampaignStatus.PAUSED, status_reason=reason
        )
        if paused:
            log.warning("campaign %s paused: %s%% failures", self.campaign.id, rate)
        return True


# --- jobs' bodies -------------------------------------------------------------------------------


def _active_lanes(runtime: Runtime) -> set[int]:
    return runtime.extras.setdefault("active_lanes", set())


async def _wake_later(runtime: Runtime, run_id: int, at: datetime) -> None:
    """Look at the run again at `at` (a deferred dispatch_run; one per run and second)."""
    assert runtime.queue is not None
    delay = max(0.0, (at - runtime.clock()).total_seconds())
    job_id = f"dispatch:{run_id}:wake:{int(at.timestamp())}"
    await runtime.queue.enqueue("dispatch_run", run_id, job_id=job_id, defer_by=delay)


async def start_run_dispatch(runtime: Runtime, run_id: int) -> int:
    """The `dispatch_run` job: start the run's lanes (or a wake-up at the window's opening).

    Returns the number of lanes enqueued. Safe to call any number of times: lanes whose
    slot is held by a live lane stop at once.
    """
    assert runtime.queue is not None and runtime.coordination is not None
    lane = Lane(runtime, run_id)
    if not await lane.prepare():
        return 0
    assert lane.campaign is not None and lane.window is not None
    if lane.campaign.status != CampaignStatus.RUNNING:
        if lane.campaign.status == CampaignStatus.CANCELLED:
            await lane.step()  # marks what is still queued as cancelled
        return 0
    now = runtime.clock()
    if not lane.window.is_open(now):
        await _wake_later(runtime, run_id, lane.window.next_open(now))
        return 0
    lanes = max(1, min(runtime.dispatch.lanes, await runtime.coordination.workers()))
    for slot in range(lanes):
        chain = secrets.token_hex(6)
        await runtime.queue.enqueue("dispatch_lane", run_id, slot, chain, 0)
    return lanes


async def run_lane(runtime: Runtime, run_id: int, slot: int, chain: str, bounces: int) -> str:
    """The `dispatch_lane` job: work the run for up to `lane_budget` seconds, then hand over.

    Returns why it stopped (for logs and tests).
    """
    assert runtime.queue is not None and runtime.coordination is not None
    cfg = runtime.dispatch
    lease = f"run:{run_id}:lane:{slot}"
    if not await runtime.coordination.acquire(lease, chain, cfg.heartbeat_ttl):
        return "duplicate"
    active = _active_lanes(runtime)
    if run_id in active:
        # This process already works the run: the lane is worth more on another worker.
        if bounces < _MAX_BOUNCES:
            await runtime.queue.enqueue(
                "dispatch_lane", run_id, slot, chain, bounces + 1, defer_by=_BOUNCE_DELAY
            )
            return "bounced"
        await runtime.coordination.release(lease, chain)
        return "busy"
    active.add(run_id)
    try:
        result = await _run_with_lease(runtime, run_id, lease, chain)
    finally:
        active.discard(run_id)
    if result.reason == "budget":
        await runtime.queue.enqueue("dispatch_lane", run_id, slot, chain, 0)
        return result.reason
    await runtime.coordination.release(lease, chain)
    if result.wake_at is not None:
        await _wake_later(runtime, run_id, result.wake_at)
    return result.reason


async def _run_with_lease(runtime: Runtime, run_id: int, lease: str, chain: str) -> LaneResult:
    """Lane.run, renewing the lease every batch."""
    assert runtime.coordination is not None
    lane = Lane(runtime, run_id)
    if not await lane.prepare():
        return LaneResult("gone")
    deadline = time.monotonic() + runtime.dispatch.lane_budget
    while True:
        await runtime.coordination.acquire(lease, chain, runtime.dispatch.heartbeat_ttl)
        result = await lane.step()
        if result is not None:
            return result
        stopping = runtime.extras.get("stopping")
        if time.monotonic() >= deadline or (stopping is not None and stopping()):
            return LaneResult("budget", None, lane.sent)


async def kick_running_runs(runtime: Runtime) -> list[int]:
    """Nudge every unfinished run of a running campaign (after a restart, or a lost job)."""
    assert runtime.queue is not None
    run_ids: list[Any] = await CampaignRun.filter(
        campaign__status=CampaignStatus.RUNNING, completed_at__isnull=True
    ).values_list("id", flat=True)
    for run_id in run_ids:
        await runtime.queue.enqueue("dispatch_run", run_id, job_id=f"dispatch:{run_id}")
    return list(run_ids)

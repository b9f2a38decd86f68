"""Dispatch: claim queued messages in batches, send within rate and window, record in bulk.

The life of a batch: check the campaign is running and the window open -> claim
(`queued -> sending`, attempts + 1, `claimed_by` = this worker) -> reserve each
message's place in the shared rate limit -> hand the messages over in small groups
(those due within the same tenth of a second): sleep until the group's time, check
the window, the lane's deadline and the campaign again, write `handed_at` for the
whole group in one UPDATE, then call the provider, a bounded number at a time ->
record every outcome with a few set-based updates.

`handed_at` is what makes a crash safe without sending twice: a claim left in
`sending` by a dead worker goes back to `queued` when it was never handed over, and
becomes `unconfirmed` (never re-sent; a delivery receipt settles it, see
`campaigns.dispatch.receipts`) when it was. A lane cut off by an error or a cancellation does
the same with its own batch before giving up.

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
from tortoise.functions import Avg, Min
from tortoise.transactions import in_transaction

from campaigns.campaign import lifecycle as campaign_service
from campaigns.core.runtime import Runtime
from campaigns.dispatch.rate_limit import RateLimiter
from campaigns.models import (
    Campaign,
    CampaignRun,
    CampaignStatus,
    Message,
    MessagePart,
    MessageStatus,
    Person,
)
from campaigns.registry.optouts import normalise_address, opted_out_among, unsubscribe_url
from campaigns.rules.send_window import SendWindow, parse_send_window
from providers.base import EmailRequest, Outcome, SendResult, SmsRequest

__all__ = [
    "LaneResult",
    "batch_limit",
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
# Sends planned within this span are handed over together: one UPDATE per group.
GROUP_SPAN = 0.1
# A batch holds about this many seconds of sending at the rate limit: a pause, the end
# of the window or of the lane's budget is never more than a batch away.
BATCH_SECONDS = 10.0
# Seconds between two looks at the campaign's status inside a batch.
_STATUS_EVERY = 1.0
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
    unconfirmed = await Message.filter(id__in=ids, claimed_by=worker_id, status=M.SENDING).update(
        status=M.UNCONFIRMED, error=UNCONFIRMED_TEXT
    )
    return requeued, unconfirmed


async def recover_stale_claims(runtime: Runtime, run_ids: list[int] | None = None) -> int:
    """Settle what dead workers left in `sending`; returns how many messages it settled.

    Never handed to the provider (`handed_at` null): back to `queued`, the attempt given
    back, sent later by a live worker. Handed over: `unconfirmed`, never re-sent.
    """
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


# --- lanes --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LaneResult:
    """Why a lane stopped, and when the run wants looking at again (None: not by this lane)."""

    # done, paused, cancelled, stopped, window, retry_later, waiting, budget, gone, lost
    reason: str
    wake_at: datetime | None = None
    sent: int = 0


def batch_limit(batch_size: int, rate: float, lanes: int, avg_segments: float) -> int:
    """Messages one lane claims at once: at most what it can send in BATCH_SECONDS.

    The rate (SMS parts per second, 0: no limit) is shared by the run's lanes; a message
    of several parts uses as many units of it.
    """
    if rate <= 0:
        return batch_size
    per_lane = rate * BATCH_SECONDS / max(1, lanes) / max(1.0, avg_segments)
    return max(1, min(batch_size, int(per_lane)))


def _rate_of(limiter: RateLimiter | None) -> float:
    return float(getattr(limiter, "rate_per_second", 0.0) or 0.0) if limiter is not None else 0.0


@dataclass
class _Group:
    """Messages handed over together: `at` is when the first may leave (monotonic clock)."""

    at: float
    items: list[tuple[Claimed, float]]  # each message with the time it may leave


_BUDGET = "budget"
_RECHECK = "recheck"  # the campaign changed status: the next step says what to do
_background: set[asyncio.Task[Any]] = set()


async def _shielded(coro: Any) -> None:
    """Run a clean-up to its end even when the caller is cancelled meanwhile."""
    task = asyncio.ensure_future(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)
    await asyncio.shield(task)


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
        self.avg_segments = 1.0
        # monotonic time after which no new group is handed over (set by the lane's job)
        self.deadline: float | None = None
        self._status_checked = 0.0
        self._calling: set[int] = set()  # this batch's messages whose provider call started

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
        if self.campaign.channel == "sms" and _rate_of(self._limiter("sms")) > 0:
            average = await (
                Message.filter(run_id=self.run_id, status=M.QUEUED)
                .annotate(avg=Avg("segments"))
                .values_list("avg", flat=True)
            )
            if average and average[0] is not None:
                self.avg_segments = max(1.0, float(average[0]))
        return True

    def _limiter(self, channel: str) -> RateLimiter | None:
        """SMS parts share CAMPAIGNS_SEND_RATE; e-mail has its own limit, if one is set."""
        if channel == "sms":
            return self.runtime.rate_limiter
        return self.runtime.extras.get("email_rate_limiter")

    def _batch_limit(self) -> int:
        assert self.campaign is not None
        rate = _rate_of(self._limiter(self.campaign.channel))
        return batch_limit(self.cfg.batch_size, rate, self.cfg.lanes, self.avg_segments)

    async def step(self) -> LaneResult | None:
        """One batch; a LaneResult when the lane should stop, None to go on."""
        assert self.campaign is not None and self.window is not None
        status = await Campaign.filter(id=self.campaign.id).values_list("status", flat=True)
        self._status_checked = time.monotonic()
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
        self._calling = set()
        try:
            batch = await skip_opted_out(batch, self.worker_id, now)
            results, stop = await self._send(batch)
            tally, reasons = await record_results(
                self.runtime, self.worker_id, results, self.runtime.clock()
            )
        except BaseException:
            # Cut off (arq's timeout, SIGTERM, a database error): nothing stays `sending`
            # under this live worker, or the run would wait for it forever.
            await _shielded(self._abandon([m.id for m in batch]))
            raise
        self.sent += tally.submitted
        self.tried += tally.submitted + tally.failed + tally.unconfirmed
        self.failed += tally.failed
        self.reasons.update(reasons)
        if await self._auto_pause():
            return LaneResult("paused")
        if stop is None or stop.reason == _RECHECK:
            return None
        if stop.reason == _BUDGET:
            return LaneResult(_BUDGET, None, self.sent)
        return stop

    async def _abandon(self, ids: list[int]) -> None:
        try:
            requeued, unconfirmed = await release_claims(
                self.worker_id, ids, set(ids) - self._calling
            )
        except Exception:
            log.exception("run %s: claims of an interrupted batch not released", self.run_id)
            return
        log.warning(
            "run %s: batch interrupted, %d message(s) queued again, %d unconfirmed",
            self.run_id,
            requeued,
            unconfirmed,
        )

    async def release_orphans(self) -> None:
        """Settle this worker's claims in the run that an earlier lane could not release.

        Called when a lane starts: a process works a run with one lane at a time, so
        any `sending` claim of this worker in the run belongs to no running batch.
        """
        requeued, unconfirmed = await release_claims(
            self.worker_id,
            await Message.filter(
                run_id=self.run_id, claimed_by=self.worker_id, status=M.SENDING
            ).values_list("id", flat=True),
            set(),
        )
        if requeued or unconfirmed:
            log.warning(
                "run %s: %d earlier claim(s) queued again, %d unconfirmed",
                self.run_id,
                requeued,
                unconfirmed,
            )

    async def _idle(self, now: datetime) -> LaneResult | None:
        """Nothing to claim: wait for retries or other workers, or close the run (None: go on)."""
        queued = Message.filter(run_id=self.run_id, status=M.QUEUED)
        due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
        poll = now + timedelta(seconds=self.cfg.idle_poll)
        if await queued.filter(due).exists():
            return LaneResult("waiting", poll)  # locked by another worker's claim right now
        if await Message.filter(run_id=self.run_id, status=M.SENDING).exists():
            await recover_stale_claims(self.runtime, [self.run_id])
            if await Message.filter(run_id=self.run_id, status=M.SENDING).exists():
                return LaneResult("waiting", poll)
            if await queued.filter(due).exists():
                return None  # a dead worker's unsent claims are back in the queue
        earliest = await queued.annotate(first=Min("next_attempt_at")).values_list(
            "first", flat=True
        )
        if earliest and earliest[0] is not None:
            return LaneResult("retry_later", earliest[0])
        await campaign_service.finish_run(self.run_id, now)
        return LaneResult("done")

    async def _send(
        self, batch: list[Claimed]
    ) -> tuple[list[tuple[Claimed, SendResult]], LaneResult | None]:
        """Plan, hand over and send the batch; the results, and why it stopped early if so."""
        results: list[tuple[Claimed, SendResult]] = []
        sendable: list[Claimed] = []
        for message in batch:
            if message.address:
                sendable.append(message)
            else:
                results.append(
                    (message, SendResult(Outcome.FAILED, parts=0, reason="campaigns:no-address"))
                )
        try:
            groups = await self._plan(sendable)
        except Exception as exc:
            # The limiter (Redis) failed before anything left: the batch waits in the queue.
            log.warning("run %s: rate limit unavailable (%s)", self.run_id, type(exc).__name__)
            await release_claims(self.worker_id, [m.id for m in sendable], set())
            retry = self.runtime.clock() + timedelta(seconds=self.cfg.idle_poll)
            return results, LaneResult("waiting", retry)
        sent, stop = await self._hand_over(groups)
        return results + sent, stop

    async def _plan(self, messages: list[Claimed]) -> list[_Group]:
        """Reserve each message's place in the rate limit, in order; group by planned time."""
        groups: list[_Group] = []
        for message in messages:
            limiter = self._limiter(message.channel)
            at = time.monotonic()
            if limiter is not None:
                units = message.segments if message.channel == "sms" else 1
                at += await limiter.reserve(units)
            last = groups[-1] if groups else None
            if (
                last is not None
                and at < last.at + GROUP_SPAN
                and len(last.items) < self.cfg.concurrency
            ):
                last.items.append((message, at))
            else:
                groups.append(_Group(at, [(message, at)]))
        return groups

    async def _hand_over(
        self, groups: list[_Group]
    ) -> tuple[list[tuple[Claimed, SendResult]], LaneResult | None]:
        """Group after group: wait for its time, check, mark handed in one UPDATE, send.

        Sends overlap across groups, `concurrency` at a time; at most twice that many
        are handed over and unfinished, so that a crash leaves few handed messages
        that had not yet reached the provider.
        """
        semaphore = asyncio.Semaphore(self.cfg.concurrency)
        ahead = 2 * self.cfg.concurrency
        tasks: list[asyncio.Task[tuple[Claimed, SendResult]]] = []
        unfinished: set[asyncio.Task[tuple[Claimed, SendResult]]] = set()
        stop: LaneResult | None = None
        try:
            for index, group in enumerate(groups):
                delay = group.at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                while unfinished and len(unfinished) + len(group.items) > ahead:
                    _, unfinished = await asyncio.wait(
                        unfinished, return_when=asyncio.FIRST_COMPLETED
                    )
                stop = await self._interrupted()
                if stop is not None:
                    rest = [m.id for later in groups[index:] for m, _ in later.items]
                    await release_claims(self.worker_id, rest, set())
                    break
                handed = await self._hand([m.id for m, _ in group.items])
                for message, at in group.items:
                    if message.id in handed:
                        task = asyncio.create_task(self._call(message, at, semaphore))
                        tasks.append(task)
                        unfinished.add(task)
            return list(await asyncio.gather(*tasks)), stop
        except BaseException:
            for task in tasks:
                task.cancel()  # those not yet in the provider's hands never will be
            raise

    async def _interrupted(self) -> LaneResult | None:
        """Why the next group must not be handed over, if it must not."""
        assert self.campaign is not None and self.window is not None
        now = self.runtime.clock()
        if not self.window.is_open(now):
            return LaneResult("window", self.window.next_open(now))
        stopping = self.runtime.extras.get("stopping")
        if (self.deadline is not None and time.monotonic() >= self.deadline) or (
            stopping is not None and stopping()
        ):
            return LaneResult(_BUDGET)
        if time.monotonic() - self._status_checked >= _STATUS_EVERY:
            status = await Campaign.filter(id=self.campaign.id).values_list("status", flat=True)
            self._status_checked = time.monotonic()
            if not status or status[0] != CampaignStatus.RUNNING:
                return LaneResult(_RECHECK)
        return None

    async def _hand(self, ids: list[int]) -> set[int]:
        """Mark the group handed over; the ids still ours to send (normally all of them)."""
        now = self.runtime.clock()
        mine = Message.filter(id__in=ids, claimed_by=self.worker_id, status=M.SENDING)
        if await mine.update(handed_at=now) == len(ids):
            return set(ids)
        # Some claims were taken from us meanwhile (superseded by the campaign's next run,
        # or given back after our heartbeat was missed): only the others are sent.
        return set(await mine.filter(handed_at__isnull=False).values_list("id", flat=True))

    async def _call(
        self, message: Claimed, at: float, semaphore: asyncio.Semaphore
    ) -> tuple[Claimed, SendResult]:
        delay = at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # its own place in the rate limit, within the group
        async with semaphore:
            self._calling.add(message.id)
            return message, await self._send_one(message)

    async def _send_one(self, message: Claimed) -> SendResult:
        """The provider call; any error from it is an unknown outcome (it may have left)."""
        runtime = self.runtime
        try:
            if message.channel == "sms":
                assert runtime.sms is not None, "no SMS provider"
                return await runtime.sms.send_sms(
                    SmsRequest(
                        message_id=str(message.id),
                        to=message.address or "",
                        sender=self.sender,
                        text=message.text,
                        unicode=(message.encoding or "").upper().startswith("UCS"),
                    )
                )
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
    """Batches until the lane must stop, renewing the lease before each; no new group
    is handed over after the lane's budget (the rest of a batch goes back to the queue)."""
    assert runtime.coordination is not None
    lane = Lane(runtime, run_id)
    if not await lane.prepare():
        return LaneResult("gone")
    await lane.release_orphans()
    lane.deadline = time.monotonic() + runtime.dispatch.lane_budget
    while True:
        if not await runtime.coordination.acquire(lease, chain, runtime.dispatch.heartbeat_ttl):
            # The lease expired and another chain holds the slot now: two lanes on one
            # slot would multiply the lanes of the run, so this one stops.
            log.warning("run %s: lane lease %s lost, lane stopped", run_id, lease)
            return LaneResult("lost", None, lane.sent)
        result = await lane.step()
        if result is not None:
            return result
        stopping = runtime.extras.get("stopping")
        if time.monotonic() >= lane.deadline or (stopping is not None and stopping()):
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

"""Lanes: one worker's share of a run, sending batch after batch within rate and window.

The life of a batch: check the campaign is running and the window open -> claim
(`queued -> sending`, attempts + 1, `claimed_by` = this worker; see
`campaigns.dispatch.claims`) -> reserve each message's place in the shared rate limit ->
hand the messages over in small groups (those due within the same tenth of a second):
sleep until the group's time, check the window, the lane's deadline and the campaign
again, write `handed_at` for the whole group in one UPDATE, then call the provider, a
bounded number at a time -> record every outcome with a few set-based updates (see
`campaigns.dispatch.recording`).

`handed_at` is what makes a crash safe without sending twice: a lane cut off by an error
or a cancellation gives its batch back (`release_claims`) before giving up. The jobs
that start and run lanes are in `campaigns.dispatch.runs`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise.expressions import Q
from tortoise.functions import Avg, Min

from campaigns.campaign import lifecycle as campaign_service
from campaigns.core.runtime import Runtime
from campaigns.dispatch.claims import (
    Claimed,
    claim_batch,
    recover_stale_claims,
    release_claims,
    skip_opted_out,
)
from campaigns.dispatch.rate_limit import RateLimiter
from campaigns.dispatch.recording import UNDESCRIBED, record_results
from campaigns.models import Campaign, CampaignRun, CampaignStatus, Message, MessageStatus
from campaigns.registry.optouts import unsubscribe_url
from campaigns.rules.send_window import SendWindow, parse_send_window
from providers.base import EmailRequest, Outcome, SendResult, SmsRequest

__all__ = ["GROUP_SPAN", "Lane", "LaneResult", "batch_limit"]

log = logging.getLogger(__name__)

M = MessageStatus
# Sends planned within this span are handed over together: one UPDATE per group.
GROUP_SPAN = 0.1
# A batch holds about this many seconds of sending at the rate limit: a pause, the end
# of the window or of the lane's budget is never more than a batch away.
BATCH_SECONDS = 10.0
# Seconds between two looks at the campaign's status inside a batch.
_STATUS_EVERY = 1.0


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
        main = self.reasons.most_common(1)[0][0] if self.reasons else UNDESCRIBED
        reason = f"Mise en pause automatique : {rate} % d'échecs ({main})"[:255]
        paused = await Campaign.filter(id=self.campaign.id, status=CampaignStatus.RUNNING).update(
            status=CampaignStatus.PAUSED, status_reason=reason
        )
        if paused:
            log.warning("campaign %s paused: %s%% failures", self.campaign.id, rate)
        return True

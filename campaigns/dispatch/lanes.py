"""Lanes: one worker's share of a run, sending batch after batch within rate and window.

The life of a batch: check the campaign is running and the window open -> claim
(`queued -> sending`, attempts + 1, `claimed_by` = this worker; see
`campaigns.dispatch.claims`) -> reserve each message's place in the shared rate limit ->
hand the messages over in small groups, each group's outcomes committed before the next
group is handed over (see `campaigns.dispatch.handover` and `.recording`).

`handed_at` is what makes a crash safe without sending twice: a lane cut off by an error
or a cancellation gives its batch back (`release_claims`) before giving up, what was
handed over but never called going back to the queue. While the database is away the
outcomes already known are kept in memory and written when it answers again. The jobs
that start and run lanes are in `campaigns.dispatch.runs`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from tortoise.expressions import Q
from tortoise.functions import Avg, Min

from campaigns.campaign import lifecycle as campaign_service
from campaigns.core.runtime import Runtime
from campaigns.dispatch.claims import (
    claim_batch,
    recover_stale_claims,
    release_claims,
    skip_opted_out,
)
from campaigns.dispatch.handover import (
    _BUDGET,
    _RECHECK,
    GROUP_SPAN,
    HandOver,
    LaneResult,
)
from campaigns.dispatch.outages import database_unavailable
from campaigns.dispatch.rate_limit import RateLimiter
from campaigns.dispatch.recording import UNDESCRIBED, record_results
from campaigns.models import Campaign, CampaignRun, CampaignStatus, Message, MessageStatus
from campaigns.rules.send_window import SendWindow, parse_send_window

__all__ = ["GROUP_SPAN", "Lane", "LaneResult", "batch_limit", "record_leftovers"]

log = logging.getLogger(__name__)

M = MessageStatus
# A batch holds about this many seconds of sending at the rate limit: a pause, the end
# of the window or of the lane's budget is never more than a batch away.
BATCH_SECONDS = 10.0


def batch_limit(batch_size: int, rate: float, lanes: int, avg_segments: float) -> int:
    """Messages one lane claims at once: at most what it can send in BATCH_SECONDS.

    The rate (SMS parts per second, 0: no limit) is shared by the run's lanes; a message
    of several parts uses as many units of it.
    """
    if rate <= 0:
        return batch_size
    per_lane = rate * BATCH_SECONDS / max(1, lanes) / max(1.0, avg_segments)
    return max(1, min(batch_size, int(per_lane)))


def _rate_of(limiter: RateLimiter) -> float:
    return float(getattr(limiter, "rate_per_second", 0.0) or 0.0)


_background: set[asyncio.Task[Any]] = set()


async def _shielded(coro: Any) -> None:
    """Run a clean-up to its end even when the caller is cancelled meanwhile."""
    task = asyncio.ensure_future(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)
    await asyncio.shield(task)


async def record_leftovers(runtime: Runtime, worker_id: str | None = None) -> int:
    """Write what lanes of this process kept while the database was away; how many claims.

    Known outcomes first, then the claims to give back (those whose call never started
    go back to the queue). Entries that still cannot be written stay for the next time.
    """
    kept = runtime.state.dispatch_leftovers
    done = 0
    for entry in list(kept.unrecorded):
        owner, results = entry
        if worker_id is not None and owner != worker_id:
            continue
        await record_results(runtime, owner, results, runtime.clock())
        kept.unrecorded.remove(entry)
        done += len(results)
    for release in list(kept.releases):
        owner, ids, not_called = release
        if worker_id is not None and owner != worker_id:
            continue
        requeued, unconfirmed = await release_claims(owner, ids, not_called)
        kept.releases.remove(release)
        done += requeued + unconfirmed
    return done


class Lane(HandOver):
    """One worker's share of a run: batches until the run is done, stopped or must wait."""

    def __init__(self, runtime: Runtime, run_id: int) -> None:
        self.runtime = runtime
        self.run_id = run_id
        self.worker_id = runtime.coordination.worker_id
        self.cfg = runtime.dispatch
        self.campaign: Campaign | None = None
        self.window: SendWindow = runtime.send_window
        self.sender = runtime.settings.sms_sender
        self.tried = 0
        self.failed = 0
        self.reasons: Counter[str] = Counter()
        self.sent = 0
        self.avg_segments = 1.0
        # monotonic time after which no new group is handed over (set by the lane's job)
        self.deadline: float | None = None
        self._init_handover()

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
        self.sender = campaign_service.sender_of(self.campaign, settings)
        if self.campaign.channel == "sms" and _rate_of(self._limiter("sms")) > 0:
            average: list[Any] = await (
                Message.filter(run_id=self.run_id, status=M.QUEUED)
                .annotate(avg=Avg("segments"))
                .values_list("avg", flat=True)
            )
            if average and average[0] is not None:
                self.avg_segments = max(1.0, float(average[0]))
        return True

    def _batch_limit(self) -> int:
        assert self.campaign is not None
        rate = _rate_of(self._limiter(self.campaign.channel))
        return batch_limit(self.cfg.batch_size, rate, self.cfg.lanes, self.avg_segments)

    async def step(self) -> LaneResult | None:
        """One batch; a LaneResult when the lane should stop, None to go on."""
        assert self.campaign is not None
        status: list[Any] = await Campaign.filter(id=self.campaign.id).values_list(
            "status", flat=True
        )
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
            stop = await self._send(batch)
        except BaseException:
            # Cut off (arq's timeout, SIGTERM, a database error): nothing stays `sending`
            # under this live worker, or the run would wait for it forever.
            await _shielded(self._abandon([m.id for m in batch]))
            raise
        if await self._auto_pause():
            return LaneResult("paused")
        if stop is None or stop.reason == _RECHECK:
            return None
        if stop.reason == _BUDGET:
            return LaneResult(_BUDGET, None, self.sent)
        return stop

    async def _abandon(self, ids: list[int]) -> None:
        kept = self.runtime.state.dispatch_leftovers
        results, self._unrecorded = self._unrecorded, []
        not_called = set(ids) - self._calling
        if results:
            try:
                await record_results(self.runtime, self.worker_id, results, self.runtime.clock())
            except Exception as exc:
                if not database_unavailable(exc):
                    # Not an outage: their calls started, so they become unconfirmed below.
                    log.exception("run %s: outcomes of a batch not recorded", self.run_id)
                else:
                    # The database is away: written as soon as it answers again.
                    kept.unrecorded.append((self.worker_id, results))
                    kept.releases.append((self.worker_id, ids, not_called))
                    log.warning("run %s: batch interrupted, kept for later", self.run_id)
                    return
        try:
            requeued, unconfirmed = await release_claims(self.worker_id, ids, not_called)
        except Exception as exc:
            if database_unavailable(exc):
                kept.releases.append((self.worker_id, ids, not_called))
                log.warning("run %s: batch interrupted, kept for later", self.run_id)
            else:
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
        any `sending` claim of this worker in the run belongs to no running batch. What
        an interrupted batch kept in memory is written first: its known outcomes, and
        which calls never started.
        """
        await record_leftovers(self.runtime, self.worker_id)
        orphans: list[Any] = await Message.filter(
            run_id=self.run_id, claimed_by=self.worker_id, status=M.SENDING
        ).values_list("id", flat=True)
        requeued, unconfirmed = await release_claims(self.worker_id, orphans, set())
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
        earliest: list[Any] = await queued.annotate(first=Min("next_attempt_at")).values_list(
            "first", flat=True
        )
        if earliest and earliest[0] is not None:
            return LaneResult("retry_later", earliest[0])
        await campaign_service.finish_run(self.run_id, now)
        return LaneResult("done")

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

"""Handing a claimed batch to the provider, group by group, each group recorded before the next.

Each message's place in the shared rate limit is reserved first (in order); messages
due within the same tenth of a second form a group of at most `concurrency`. For each
group: wait for its last message's time (none leaves early), check the window, the
lane's deadline and the campaign, mark the group handed over, call the provider for all
of it at once, then commit its outcomes before the next group is handed over (in the
same statement when the next group is already due: `record_and_hand`). A crash thus
loses at most the calls actually in flight: only those can be `unconfirmed`.

A throttle slows the shared rate limit (back-off) and a provider that cannot be reached
pauses it; either way the rest of the batch goes back to the queue unspent, and the lane
claims again at the slower pace.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from campaigns.core.null_services import NoRateLimit
from campaigns.dispatch.claims import Claimed, release_claims
from campaigns.dispatch.outages import database_unavailable, wait_for_database
from campaigns.dispatch.rate_limit import RateLimiter
from campaigns.dispatch.recording import BatchTally, record_and_hand
from campaigns.models import Campaign, CampaignStatus, Message, MessageStatus
from campaigns.registry.optouts import unsubscribe_url
from providers.base import EmailRequest, Outcome, SendResult, SmsRequest

if TYPE_CHECKING:
    from campaigns.core.runtime import DispatchConfig, Runtime
    from campaigns.rules.send_window import SendWindow

__all__ = ["GROUP_SPAN", "HandOver", "LaneResult"]

log = logging.getLogger(__name__)

M = MessageStatus
# Sends planned within this span are handed over together: one UPDATE per group.
GROUP_SPAN = 0.1
# Seconds between two looks at the campaign's status inside a batch.
_STATUS_EVERY = 1.0
_BUDGET = "budget"
_RECHECK = "recheck"  # the campaign changed status, or the provider asked to slow down
_UNREACHABLE_CAP = 5.0  # longest pause of the rate limit while the provider is unreachable
_EMAIL_LIMIT = NoRateLimit()


@dataclass(frozen=True)
class LaneResult:
    """Why a lane stopped, and when the run wants looking at again (None: not by this lane)."""

    # done, paused, cancelled, stopped, window, retry_later, waiting, budget, gone, lost
    reason: str
    wake_at: datetime | None = None
    sent: int = 0


@dataclass
class _Group:
    """Messages handed over together: `at` is when the last may leave (monotonic clock)."""

    at: float
    items: list[Claimed]


Results = list[tuple[Claimed, SendResult]]


class HandOver:
    """The sending half of a lane (see `campaigns.dispatch.lanes.Lane`)."""

    runtime: Runtime
    run_id: int
    worker_id: str
    cfg: DispatchConfig
    campaign: Campaign | None
    window: SendWindow
    sender: str
    deadline: float | None
    sent: int
    tried: int
    failed: int
    reasons: Counter[str]

    def _init_handover(self) -> None:
        self._status_checked = 0.0
        self._calling: set[int] = set()  # this batch's messages whose provider call started
        self._unrecorded: Results = []
        self._unreachable_streak = 0

    def _limiter(self, channel: str) -> RateLimiter:
        """SMS parts share CAMPAIGNS_SEND_RATE; e-mail is not limited."""
        return self.runtime.rate_limiter if channel == "sms" else _EMAIL_LIMIT

    async def _send(self, batch: list[Claimed]) -> LaneResult | None:
        """Hand the batch over group by group; why it stopped early, if it did."""
        sendable = [m for m in batch if m.address]
        missing = [
            (m, SendResult(Outcome.FAILED, parts=0, reason="campaigns:no-address"))
            for m in batch
            if not m.address
        ]
        if missing:
            await self._record(missing)
        try:
            groups = await self._plan(sendable)
        except Exception as exc:
            # The limiter (Redis) failed before anything left: the batch waits in the queue.
            log.warning("run %s: rate limit unavailable (%s)", self.run_id, type(exc).__name__)
            await release_claims(self.worker_id, [m.id for m in sendable], set())
            retry = self.runtime.clock() + timedelta(seconds=self.cfg.idle_poll)
            return LaneResult("waiting", retry)
        return await self._hand_over(groups)

    async def _plan(self, messages: list[Claimed]) -> list[_Group]:
        """Reserve each message's place in the rate limit, in order; group by planned time."""
        groups: list[_Group] = []
        first = 0.0
        for message in messages:
            units = message.segments if message.channel == "sms" else 1
            at = time.monotonic() + await self._limiter(message.channel).reserve(units)
            last = groups[-1] if groups else None
            if (
                last is not None
                and at < first + GROUP_SPAN
                and len(last.items) < self.cfg.concurrency
            ):
                last.items.append(message)
                last.at = max(last.at, at)
            else:
                first = at
                groups.append(_Group(at, [message]))
        return groups

    async def _hand_over(self, groups: list[_Group]) -> LaneResult | None:
        handed: set[int] | None = None  # the group's ids handed over with the last commit
        for index, group in enumerate(groups):
            if handed is None:
                delay = group.at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                stop = await self._interrupted()
                if stop is not None:
                    await self._give_back(groups[index:])
                    return stop
                handed = await self._hand([m.id for m in group.items])
            calls = [self._call(m) for m in group.items if m.id in handed]
            results: Results = list(await asyncio.gather(*calls))
            self._unrecorded = results  # known from now on: kept if anything below fails
            # The next group, when already due, is handed over in the commit that records
            # this one (never before it); otherwise after its wait and its checks.
            later = groups[index + 1] if index + 1 < len(groups) else None
            hand_next: list[int] = []
            stop = None
            if later is not None and later.at <= time.monotonic():
                stop = await self._interrupted()
                if stop is None:
                    hand_next = [m.id for m in later.items]
            tally, handed_next = await self._record(results, hand_next)
            handed = handed_next if hand_next else None
            if stop is not None:
                await self._give_back(groups[index + 1 :])
                return stop
            if await self._backed_off(results, tally):
                await self._give_back(groups[index + 1 :])
                return LaneResult(_RECHECK)
        return None

    async def _give_back(self, groups: list[_Group]) -> None:
        """Claims whose turn has not come: back to the queue, their attempt given back."""
        ids = [m.id for later in groups for m in later.items]
        if ids:
            await release_claims(self.worker_id, ids, set(ids))

    async def _backed_off(self, results: Results, tally: BatchTally) -> bool:
        """Slow the shared rate after a throttle, pause it while the provider is unreachable."""
        if tally.unreachable and tally.unreachable == len(results):
            self._unreachable_streak += 1
        elif results:
            self._unreachable_streak = 0
        if not tally.throttled and not self._unreachable_streak:
            return False
        throttled = [r.retry_after or 1.0 for _, r in results if r.throttled]
        pause = max(throttled, default=0.0)
        if self._unreachable_streak:
            pause = max(pause, min(_UNREACHABLE_CAP, 0.5 * 2**self._unreachable_streak))
        channel = results[0][0].channel if results else "sms"
        try:
            await self._limiter(channel).penalise(pause, slow=bool(tally.throttled))
        except Exception as exc:  # Redis away: the queue's back-off still spaces retries
            log.warning("run %s: rate limit not slowed (%s)", self.run_id, type(exc).__name__)
        log.info(
            "run %s: provider %s, sending paused %.1f s",
            self.run_id,
            "throttling" if tally.throttled else "unreachable",
            pause,
        )
        return True

    async def _record(
        self, results: Results, hand: list[int] | None = None
    ) -> tuple[BatchTally, set[int]]:
        """Commit a group's outcomes (and hand the next group over); while the database is
        away, wait for it: the outcomes are known, they are not to be lost."""
        self._unrecorded = results
        outage = self.runtime.state.database_outage
        while True:
            try:
                tally, reasons, handed = await record_and_hand(
                    self.runtime, self.worker_id, results, self.runtime.clock(), hand or ()
                )
                break
            except Exception as exc:
                if not database_unavailable(exc):
                    raise
                outage.failed(exc)
                await wait_for_database(outage)
        self._unrecorded = []
        self.sent += tally.submitted
        self.tried += tally.submitted + tally.failed + tally.unconfirmed
        self.failed += tally.failed
        self.reasons.update(reasons)
        return tally, handed

    async def _interrupted(self) -> LaneResult | None:
        """Why the next group must not be handed over, if it must not."""
        assert self.campaign is not None
        now = self.runtime.clock()
        if not self.window.is_open(now):
            return LaneResult("window", self.window.next_open(now))
        if (
            self.deadline is not None and time.monotonic() >= self.deadline
        ) or self.runtime.state.stopping():
            return LaneResult(_BUDGET)
        if time.monotonic() - self._status_checked >= _STATUS_EVERY:
            status: list[Any] = await Campaign.filter(id=self.campaign.id).values_list(
                "status", flat=True
            )
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
        still: list[Any] = await mine.filter(handed_at__isnull=False).values_list("id", flat=True)
        return set(still)

    async def _call(self, message: Claimed) -> tuple[Claimed, SendResult]:
        self._calling.add(message.id)
        return message, await self._send_one(message)

    async def _send_one(self, message: Claimed) -> SendResult:
        """The provider call; any error from it is an unknown outcome (it may have left)."""
        runtime = self.runtime
        try:
            if message.channel == "sms":
                return await runtime.sms.send_sms(
                    SmsRequest(
                        message_id=str(message.id),
                        to=message.address or "",
                        sender=self.sender,
                        text=message.text,
                        unicode=(message.encoding or "").upper().startswith("UCS"),
                    )
                )
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

"""The bodies of the dispatch jobs: start a run's lanes, work one lane, nudge unfinished runs.

A run is worked by one or more *lanes* (jobs), at most one per worker process, each
holding a lease on its slot; `dispatch_run` starts them and lanes hand over to fresh
jobs after `lane_budget` seconds so that no job outlives the queue's timeout.
"""

from __future__ import annotations

import logging
import secrets
import time
from datetime import datetime
from typing import Any

from campaigns.core.runtime import Runtime
from campaigns.dispatch.lanes import Lane, LaneResult
from campaigns.dispatch.outages import database_unavailable, lock_conflict, wait_for_database
from campaigns.models import CampaignRun, CampaignStatus

__all__ = ["kick_running_runs", "run_lane", "start_run_dispatch"]

log = logging.getLogger(__name__)

_MAX_BOUNCES = 10  # a lane that finds its process busy with the run tries another process
_BOUNCE_DELAY = 0.5


async def _wake_later(runtime: Runtime, run_id: int, at: datetime) -> None:
    """Look at the run again at `at` (a deferred dispatch_run; one per run and second)."""
    delay = max(0.0, (at - runtime.clock()).total_seconds())
    job_id = f"dispatch:{run_id}:wake:{int(at.timestamp())}"
    await runtime.queue.enqueue("dispatch_run", run_id, job_id=job_id, defer_by=delay)


async def start_run_dispatch(runtime: Runtime, run_id: int) -> int:
    """The `dispatch_run` job: start the run's lanes (or a wake-up at the window's opening).

    Returns the number of lanes enqueued. Safe to call any number of times: lanes whose
    slot is held by a live lane stop at once.
    """
    lane = Lane(runtime, run_id)
    if not await lane.prepare():
        return 0
    assert lane.campaign is not None
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
    cfg = runtime.dispatch
    lease = f"run:{run_id}:lane:{slot}"
    if not await runtime.coordination.acquire(lease, chain, cfg.heartbeat_ttl):
        return "duplicate"
    active = runtime.state.active_lanes
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
    is handed over after the lane's budget (the rest of a batch goes back to the queue).

    The database going away does not end the lane: it waits for it (until its budget is
    spent, then hands over to a fresh job), then gives back what the outage left in
    `sending` and goes on, so that nothing waits for the minute's tick. A lock conflict
    (deadlock, serialization failure) is retried at once.
    """
    lane = Lane(runtime, run_id)
    outage = runtime.state.database_outage
    lane.deadline = time.monotonic() + runtime.dispatch.lane_budget
    prepared = False
    while True:
        try:
            if not prepared:
                if not await lane.prepare():
                    return LaneResult("gone")
                await lane.release_orphans()
                prepared = True
            if not await runtime.coordination.acquire(lease, chain, runtime.dispatch.heartbeat_ttl):
                # The lease expired and another chain holds the slot now: two lanes on one
                # slot would multiply the lanes of the run, so this one stops.
                log.warning("run %s: lane lease %s lost, lane stopped", run_id, lease)
                return LaneResult("lost", None, lane.sent)
            result = await lane.step()
        except Exception as exc:
            if lock_conflict(exc):
                # A deadlock or serialization failure: the batch was given back, go on at
                # once rather than at the next minute's tick.
                log.info("run %s: lock conflict, lane goes on", run_id)
                continue
            if not database_unavailable(exc) or _redis_error(exc):
                raise
            outage.failed(exc)
            left = max(1.0, lane.deadline - time.monotonic())
            if not await wait_for_database(outage, limit=left):
                return LaneResult("budget", None, lane.sent)
            prepared = False
            continue
        if result is not None:
            return result
        if time.monotonic() >= lane.deadline or runtime.state.stopping():
            return LaneResult("budget", None, lane.sent)


def _redis_error(exc: BaseException) -> bool:
    """A Redis client error (leases, rate limit): the worker deals with Redis outages."""
    current: BaseException | None = exc
    while current is not None:
        if type(current).__module__.startswith("redis"):
            return True
        current = current.__cause__ or current.__context__
    return False


async def kick_running_runs(runtime: Runtime) -> list[int]:
    """Nudge every unfinished run of a running campaign (after a restart, or a lost job)."""
    run_ids: list[Any] = await CampaignRun.filter(
        campaign__status=CampaignStatus.RUNNING, completed_at__isnull=True
    ).values_list("id", flat=True)
    for run_id in run_ids:
        await runtime.queue.enqueue("dispatch_run", run_id, job_id=f"dispatch:{run_id}")
    return list(run_ids)

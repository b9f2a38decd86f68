"""Shared by the dispatch tests: their runtime, running the queue, watching a lane, Paris time."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from campaigns.core.null_services import NoRateLimit
from campaigns.core.runtime import Runtime
from campaigns.dispatch import lanes
from campaigns.rules.send_window import parse_send_window
from providers.console import read_outbox
from tests.dispatch_support import T_MONDAY, Clock
from workers.inprocess import InProcessQueue

PARIS = ZoneInfo("Europe/Paris")
# At 25 parts/s sends are planned 0.04 s apart: groups (0.1 s) of 3, starting 0.12 s apart.
GROUPED_RATE = 25


def dispatch_runtime(runtime: Runtime) -> Runtime:
    """The test runtime on a fixed Monday morning, without a rate limit, small batches."""
    # Tortoise.init exports TIMEZONE=UTC, which Settings reads by field name: pin ours.
    runtime.settings.timezone = "Europe/Paris"
    runtime.send_window = parse_send_window(runtime.settings.send_window, "Europe/Paris", "FR")
    runtime.clock = Clock(T_MONDAY)
    runtime.rate_limiter = NoRateLimit()
    runtime.dispatch.batch_size = 10
    return runtime


def queue(rt: Runtime) -> InProcessQueue:
    assert isinstance(rt.queue, InProcessQueue)
    return rt.queue


async def run_dispatch(rt: Runtime, run_id: int) -> InProcessQueue:
    q = queue(rt)
    await q.enqueue("dispatch_run", run_id, job_id=f"dispatch:{run_id}")
    await q.run_until_idle()
    return q


async def prepared_lane(rt: Runtime, run_id: int) -> lanes.Lane:
    lane = lanes.Lane(rt, run_id)
    assert await lane.prepare()
    return lane


def sent_ids(rt: Runtime) -> Counter[str]:
    return Counter(r["message_id"] for r in read_outbox(rt.settings.outbox_dir, limit=1000))


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS).astimezone(UTC)

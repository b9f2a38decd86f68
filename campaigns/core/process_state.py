"""What one process learns while it runs and its jobs share: outages, lanes, leftovers.

Nothing here is configuration (that is `Settings`) nor a service (the rest of
`Runtime`): it starts empty with the process and is lost with it, which is safe: each
piece is either rebuilt by the minute's tick or, for what dispatch could not write,
written as soon as the database answers again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from campaigns.core.outage import Outage

if TYPE_CHECKING:
    from campaigns.dispatch.claims import Claimed
    from providers.base import SendResult

__all__ = ["Leftovers", "ProcessState"]


@dataclass
class Leftovers:
    """What lanes of this process could not write while the database was away.

    `unrecorded`: (worker id, results) known but not yet committed; `releases`: (worker
    id, claimed ids, ids whose call never started) to give back. Written as soon as the
    database answers again (see `Lane.release_orphans` and the worker's recovery step).
    """

    unrecorded: list[tuple[str, list[tuple[Claimed, SendResult]]]] = field(default_factory=list)
    releases: list[tuple[str, list[int], set[int]]] = field(default_factory=list)


def _never() -> bool:
    return False


@dataclass
class ProcessState:
    """The state one process keeps between its jobs (see the module's docstring)."""

    # One view per dependency, so that an outage is logged once however many jobs meet it.
    database_outage: Outage = field(default_factory=lambda: Outage("PostgreSQL"))
    redis_outage: Outage = field(default_factory=lambda: Outage("Redis"))
    receipts_queue_outage: Outage = field(default_factory=lambda: Outage("File de travaux"))
    # The period whose `apply_receipts` job this process already asked for: one request
    # per period, not one per webhook batch.
    receipts_period: int | None = None
    # Runs this process works a lane of: a second lane of the same run is worth more on
    # another worker.
    active_lanes: set[int] = field(default_factory=set)
    dispatch_leftovers: Leftovers = field(default_factory=Leftovers)
    # True once lanes must stop after their current batch (a worker told to shut down).
    stopping: Callable[[], bool] = _never

"""Outages told from bugs, logged once each, waited for; lock conflicts retried at once."""

from __future__ import annotations

import logging

import asyncpg
import pytest
from tortoise.exceptions import OperationalError

from campaigns.core.outage import Outage
from campaigns.dispatch import outages
from campaigns.dispatch.outages import database_unavailable, lock_conflict


def _wrapped(exc: BaseException) -> BaseException:
    try:
        try:
            raise exc
        except BaseException as inner:
            raise OperationalError("wrapped") from inner
    except OperationalError as outer:
        return outer


@pytest.mark.parametrize(
    ("exc", "away"),
    [
        (ConnectionRefusedError(111, "Connect call failed"), True),
        (asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"), True),
        (asyncpg.exceptions.CannotConnectNowError("the database system is starting up"), True),
        (asyncpg.exceptions.AdminShutdownError("terminating connection"), True),
        (asyncpg.exceptions.InterfaceError("pool is closing"), True),
        (_wrapped(ConnectionResetError()), True),
        (asyncpg.exceptions.InterfaceError("cannot call Connection.fetch(): bad args"), False),
        (asyncpg.exceptions.UniqueViolationError("duplicate key"), False),
        (ValueError("bug"), False),
    ],
)
def test_a_lost_database_is_told_from_a_bug(exc: BaseException, away: bool) -> None:
    assert database_unavailable(exc) is away


def test_deadlocks_and_serialization_failures_are_lock_conflicts() -> None:
    assert lock_conflict(asyncpg.exceptions.DeadlockDetectedError("deadlock detected"))
    assert lock_conflict(_wrapped(asyncpg.exceptions.SerializationError("could not serialize")))
    assert not lock_conflict(ValueError("no"))


async def test_a_lock_conflict_is_retried_at_once() -> None:
    tries = []

    async def action() -> str:
        tries.append(1)
        if len(tries) < 3:
            raise asyncpg.exceptions.DeadlockDetectedError("deadlock detected")
        return "ok"

    assert await outages.retry_lock_conflicts(action, what="test") == "ok"
    assert len(tries) == 3


async def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outage = Outage("PostgreSQL", first=0.001, cap=0.002)
    recovered = []
    outage.on_recovery(lambda: _note(recovered))
    answers = [ConnectionRefusedError(111, "refused")] * 5

    async def probe() -> None:
        if answers:
            raise answers.pop()

    with caplog.at_level(logging.WARNING, logger="campaigns.core.outage"):
        assert await outages.wait_for_database(outage, probe=probe)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert messages[0].startswith("PostgreSQL injoignable")
    assert messages[1].startswith("PostgreSQL de retour")
    assert recovered == [1] and not outage.down


async def test_waiting_gives_up_after_its_limit() -> None:
    outage = Outage("PostgreSQL", first=0.01, cap=0.02)

    async def probe() -> None:
        raise ConnectionRefusedError(111, "refused")

    assert not await outages.wait_for_database(outage, limit=0.05, probe=probe)
    assert outage.down


async def _note(seen: list[int]) -> None:
    seen.append(1)


async def test_a_lane_goes_on_at_once_after_a_lock_conflict(
    runtime: object, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deadlock in a batch: the batch is given back and the lane claims again, now."""
    from campaigns.core.runtime import Runtime
    from campaigns.dispatch import claims, lanes, runs
    from tests.dispatch_runs import dispatch_runtime
    from tests.dispatch_support import counts, make_run

    assert isinstance(runtime, Runtime)
    rt = dispatch_runtime(runtime)
    campaign, run = await make_run(5)
    real = claims.skip_opted_out
    calls = []

    async def deadlock_once(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise asyncpg.exceptions.DeadlockDetectedError("deadlock detected")
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(lanes, "skip_opted_out", deadlock_once)
    assert await runs.run_lane(rt, run.id, 0, "chain", 0) == "done"
    assert await counts(campaign.id) == {"submitted": 5}
    assert len(calls) == 2

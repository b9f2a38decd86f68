""" "Next" under contention: caseworkers pressing it at once never get the same escalation."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from campaigns.core.runtime import Runtime, offline_runtime
from campaigns.core.settings import Settings
from campaigns.escalations import operations as service
from campaigns.models import Escalation, EscalationStatus, Role, Staff

NOW = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)
ESCALATIONS = 20
CASEWORKERS = 10
PRESSES = 3  # each caseworker presses "next" this many times: 30 presses for 20 rows


def fixed_runtime() -> Runtime:
    return offline_runtime(Settings(_env_file=None), clock=lambda: NOW)  # type: ignore[call-arg]


async def seed() -> list[Staff]:
    for index in range(ESCALATIONS):
        await Escalation.create(
            person_id=index + 1,
            queue="urgence",
            priority=3 if index % 2 else 2,
            open_key=f"p{index + 1}:urgence",
            due_at=NOW + timedelta(minutes=index),
            reply_ids=[index + 1],
        )
    return [
        await Staff.create(
            email=f"ts{n}@ccas.test", role=Role.CASEWORKER, password_hash="x", queues=["urgence"]
        )
        for n in range(CASEWORKERS)
    ]


async def press_next(staff: Staff, runtime: Runtime, claim) -> list[int]:
    """One caseworker's task: press "next" several times, each press its own transaction."""
    got = []
    for _ in range(PRESSES):
        result = await claim(staff, runtime)
        if result is not None:
            got.append(result)
        await asyncio.sleep(0)
    return got


async def check_distinct_claims(staff: list[Staff], claims: list[list[int]]) -> None:
    flat = [escalation_id for per_staff in claims for escalation_id in per_staff]
    assert len(flat) == len(set(flat)) == ESCALATIONS, "an escalation was claimed twice or lost"
    rows = {row.id: row for row in await Escalation.all()}
    assert {row.status for row in rows.values()} == {EscalationStatus.CLAIMED}
    for member, mine in zip(staff, claims, strict=True):
        assert all(rows[escalation_id].assignee_id == member.id for escalation_id in mine)


async def test_next_skips_locked_rows_on_postgres(pg_db: str) -> None:
    staff = await seed()
    runtime = fixed_runtime()

    async def claim(member: Staff, rt: Runtime) -> int | None:
        escalation = await service.claim_next(member, "urgence", rt)
        return escalation.id if escalation else None

    started = time.perf_counter()
    claims = await asyncio.gather(*(press_next(member, runtime, claim) for member in staff))
    elapsed = time.perf_counter() - started
    await check_distinct_claims(staff, claims)
    print(f"\n{CASEWORKERS * PRESSES} presses, {ESCALATIONS} claims in {elapsed * 1000:.0f} ms")


async def test_the_conditional_update_path_is_race_safe_too(pg_db: str) -> None:
    # The SQLite path relies on UPDATE ... WHERE still-claimable and its row count; on
    # PostgreSQL the same statements run truly concurrently, which is the harder test.
    staff = await seed()
    runtime = fixed_runtime()

    async def claim(member: Staff, rt: Runtime) -> int | None:
        return await service._claim_next_conditional(member, "urgence", NOW)

    claims = await asyncio.gather(*(press_next(member, runtime, claim) for member in staff))
    await check_distinct_claims(staff, claims)


async def test_next_in_turn_on_both_engines(db: str) -> None:
    staff = await seed()
    runtime = fixed_runtime()
    claimed: list[int] = []
    for _ in range(PRESSES):
        for member in staff:
            escalation = await service.claim_next(member, "urgence", runtime)
            if escalation is not None:
                claimed.append(escalation.id)
    assert len(claimed) == len(set(claimed)) == ESCALATIONS
    # The first ten presses took the ten high-priority rows, soonest due first.
    priorities = await Escalation.filter(id__in=claimed[:10]).values_list("priority", flat=True)
    assert set(priorities) == {3}

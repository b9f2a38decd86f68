"""Benchmark of a call campaign's cycle on PostgreSQL: the tasks of 20,000 people.

Run: `python bench/call_cycle_bench.py [--people 20000] [--runs 3]` (PostgreSQL at
CAMPAIGNS_BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432). It creates a
database of its own, loads the people with COPY (a mobile for most, a landline only for
some, none for a few, 2 % opted out of calls, 10 % with a referent among the callers),
then times, each `--runs` times on a fresh campaign:
- the launch of the first cycle (audience read, opt-outs, referents, tasks written);
- the next cycle three days later, where whoever reached a person last time keeps them
  (half of the first cycle is marked reached first);
and, as the ceiling, PostgreSQL writing the same task rows by itself (`INSERT ... SELECT`,
no Python). Target (issue 14): a 20,000-person cycle in under 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
from bench_support import BASE_URL, admin, copy_people, emit_result, load_average  # noqa: E402
from tortoise import Tortoise  # noqa: E402

from campaigns.calls.callers import set_callers  # noqa: E402
from campaigns.campaign.launch import launch, start_due_runs  # noqa: E402
from campaigns.campaign.lifecycle import create_campaign  # noqa: E402
from campaigns.core.audit import Actor  # noqa: E402
from campaigns.core.db import close_db, init_db, migrate  # noqa: E402
from campaigns.core.runtime import offline_runtime  # noqa: E402
from campaigns.core.settings import Settings  # noqa: E402
from campaigns.messages.template_store import TemplateContent, create_template  # noqa: E402
from campaigns.models import CallStatus, CallTask, Campaign, Role  # noqa: E402
from campaigns.registry.audiences import create_audience  # noqa: E402
from campaigns.staff import create_staff  # noqa: E402

DATABASE = "campaigns_bench_calls"
ACTOR = Actor(None, "bench")
# A Monday at 09:00 in Paris: the cycle's tasks are due at once.
MONDAY = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
CALLERS = 8


def _phones(i: int, rng: random.Random) -> tuple[str | None, str | None]:
    roll = rng.random()
    if roll < 0.03:
        return None, None
    if roll < 0.15:
        return None, f"+3313{i:07d}"
    return f"+3369{i:07d}", (f"+3314{i:07d}" if roll > 0.8 else None)


async def _prepare(url: str, people: int) -> list[str]:
    mobiles = await copy_people(url, people, seed=11, source="bench", phones=_phones)
    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://"))
    try:
        # Opt-outs of calls for 2 % of the mobiles, referents for 10 % of the people.
        await conn.executemany(
            "INSERT INTO opt_out (address, channel, active, source, created_at) "
            "VALUES ($1, 'appel', true, 'bench', now())",
            [(f"tel:{m}",) for m in mobiles[::50]],
        )
        await conn.execute(
            "UPDATE person SET district = CASE id % 4 WHEN 0 THEN 'Nord' WHEN 1 THEN 'Sud' "
            "WHEN 2 THEN 'Est' ELSE 'Ouest' END, "
            "referent_email = CASE WHEN id % 10 = 0 THEN 'caller' || (id % $1) || '@ccas.bench' "
            "END",
            CALLERS,
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    emails = []
    for n in range(CALLERS):
        email = f"caller{n}@ccas.bench"
        await create_staff(email, Role.BENEVOLE if n % 2 else Role.CASEWORKER, password="x" * 12)
        emails.append(email)
    return emails


async def _campaign(settings: Settings, emails: list[str], n: int) -> Campaign:
    template = await create_template(
        f"Script {n}", "appel", TemplateContent("Bonjour {{ person.last_name }}"), actor=ACTOR
    )
    audience, _ = await create_audience(f"Tous {n}", {"segments_any": ["domicilies"]}, actor=ACTOR)
    campaign = await create_campaign(
        name=f"Appels {n}",
        channel="appel",
        template_id=template.id,
        audience_id=audience.id,
        actor=ACTOR,
        settings=settings,
        now=MONDAY,
        recurrence_days=3,
    )
    await set_callers(campaign.id, emails, actor=ACTOR)
    return campaign


async def _ceiling(campaign_id: int) -> float:
    """PostgreSQL writing a cycle's rows by itself: the same table, indexes and row count."""
    conn = Tortoise.get_connection("default")
    run = await conn.execute_query_dict(
        "INSERT INTO campaign_run (campaign_id, number, started_at, recipients, skipped) "
        "VALUES ($1, 99, now(), 0, 0) RETURNING id",
        [campaign_id],
    )
    start = time.perf_counter()
    await conn.execute_query(
        "INSERT INTO call_task (campaign_id, run_id, cycle, person_id, status, attempts, "
        "due_at, origin, notes, created_at, updated_at) "
        "SELECT $1, $2, 99, p.id, 'todo', 0, now(), 'cycle', '[]', now(), now() FROM person p "
        "WHERE EXISTS (SELECT 1 FROM membership m WHERE m.person_id = p.id "
        "AND m.segment = 'domicilies') AND (p.mobile IS NOT NULL OR p.landline IS NOT NULL)",
        [campaign_id, run[0]["id"]],
    )
    return time.perf_counter() - start


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    base = os.environ.get("CAMPAIGNS_BENCH_POSTGRES_URL", BASE_URL).rstrip("/")
    url = f"{base}/{DATABASE}"
    await admin(f"DROP DATABASE IF EXISTS {DATABASE}")
    await admin(f"CREATE DATABASE {DATABASE}")
    try:
        await migrate(url)
        await init_db(url)
        settings = Settings(
            CAMPAIGNS_DATABASE_URL=url,
            CAMPAIGNS_CCAS_NAME="CCAS de Banc-d'Essai",
            CAMPAIGNS_CCAS_HOTLINE="0 800 12 34 56",
            _env_file=None,  # type: ignore[call-arg]
        )
        runtime = offline_runtime(settings)
        try:
            emails = await _prepare(url, args.people)
            firsts, nexts, ceilings, created = [], [], [], 0
            for n in range(args.runs):
                campaign = await _campaign(settings, emails, n)
                runtime.clock = lambda: MONDAY
                start = time.perf_counter()
                result = await launch(campaign.id, actor=ACTOR, runtime=runtime)
                firsts.append(time.perf_counter() - start)
                created = result["recipients"]
                # Half the cycle reached, by the caller who had it or the first caller.
                conn = Tortoise.get_connection("default")
                await conn.execute_query(
                    "UPDATE call_task SET status = 'done', outcome = 'joint_rien', "
                    "completed_at = now(), completed_by_id = COALESCE(assignee_id, "
                    "(SELECT min(id) FROM staff)) WHERE campaign_id = $1 AND id % 2 = 0",
                    [campaign.id],
                )
                later = MONDAY + timedelta(days=3, minutes=1)
                runtime.clock = lambda later=later: later
                start = time.perf_counter()
                assert await start_due_runs(runtime, later) == 1
                nexts.append(time.perf_counter() - start)
                ceilings.append(await _ceiling(campaign.id))
                kept = await CallTask.filter(
                    campaign_id=campaign.id, cycle=2, assignee_id__isnull=False
                ).count()
                todo = await CallTask.filter(
                    campaign_id=campaign.id, status=CallStatus.TODO
                ).count()
                print(
                    f"run {n + 1}: first cycle {firsts[-1]:.2f} s, next cycle {nexts[-1]:.2f} s, "
                    f"ceiling {ceilings[-1]:.2f} s ({created:,} tasks; {kept:,} kept by their "
                    f"caller in cycle 2; {todo:,} to do) — load {load_average()}"
                )
            first, following, ceiling = (
                statistics.median(firsts),
                statistics.median(nexts),
                statistics.median(ceilings),
            )
            print(
                f"\n{args.people:,} people, {created:,} tasks: first cycle {first:.2f} s, "
                f"next cycle {following:.2f} s (median of {args.runs}); PostgreSQL alone "
                f"{ceiling:.2f} s. Target: under 2 s."
            )
            emit_result(
                [
                    {"name": f"call cycle of {args.people:,} (first)", "value": first,
                     "unit": "s", "ceiling": ceiling},
                    {"name": f"call cycle of {args.people:,} (next, callers kept)",
                     "value": following, "unit": "s", "ceiling": ceiling},
                ]
            )  # fmt: skip
        finally:
            await close_db()
    finally:
        await admin(f"DROP DATABASE IF EXISTS {DATABASE}")


if __name__ == "__main__":
    asyncio.run(main())

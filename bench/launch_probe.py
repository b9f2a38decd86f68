"""Probe of campaign launches on PostgreSQL: 100,000, 300,000 and 1,000,000 recipients.

Run: `python bench/launch_probe.py [--sizes 100000,300000,1000000] [--quick]` (PostgreSQL at
CAMPAIGNS_BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432). It creates a
database of its own, fills it once with the largest population (set-based SQL), then
launches one campaign per size, each in a fresh child process so that the peak resident
memory (VmHWM) is the launch's own. Printed per size: the launch time, the time per
100,000 (linear cost: it must not grow with the size), the child's peak RSS, the CPU
spent by the launching process and by PostgreSQL. The ceiling is the database writing
the same rows by itself (`INSERT ... SELECT` of the launch's messages into a new run,
same table, same indexes, no Python). Targets (issue 11): 1,000,000 in under 30 s, under
300 MB resident.

`--profile DIR` runs py-spy (when installed) on the child of the smallest size and
writes a flame graph and a top listing there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_support import (  # noqa: E402
    BASE_URL,
    admin,
    backend_cpu_seconds,
    cpu_seconds_by_pid,
    cpu_spent_since,
    emit_result,
    load_average,
    peak_rss_mb,
)

from campaigns.core.db import close_db, init_db, migrate  # noqa: E402

# One database per run: two runs at once must not drop each other's database.
DATABASE = f"campaigns_launch_probe_{os.getpid()}"
BODIES = {
    # The usual invitation: it reads the civility and the last name only.
    "civility": (
        "{{ ccas.name }} : Bonjour {{ person.civility }} {{ person.last_name }}, nous prenons de "
        "vos nouvelles. Appelez-nous au {{ ccas.hotline }}, {{ ccas.hours }}."
    ),
    # First and last name: nearly every person is a different text (the render cache misses).
    "full_name": (
        "{{ ccas.name }} : Bonjour {{ person.first_name }} {{ person.last_name }}, nous prenons "
        "de vos nouvelles. Appelez-nous au {{ ccas.hotline }}, {{ ccas.hours }}."
    ),
}
SIZES = (100_000, 300_000, 1_000_000)
QUICK_SIZES = (20_000, 60_000, 200_000)

# A town's register: half the people carry one of 40 common surnames (some accented,
# a few with letters outside GSM-7), the other half one of 300,000 rarer ones; 2 % have
# no phone, 3 % only a landline, 1 % share the mobile of the person before them (a
# couple, a family); 2 % of the mobiles are opted out. Mobiles come in no particular
# order, as in life (the message index on addresses is written at random places). The
# blocks of ids are districts, so that each size is an audience of the first N people.
FILL_SQL = """
INSERT INTO person (first_name, last_name, civility, identity_key, mobile, landline,
                    preferred_channel, district, created_at, updated_at)
SELECT ($1::text[])[1 + (g * 7919) % array_length($1::text[], 1)],
       CASE WHEN (g * 2654435761) % 100 < 50
            THEN ($2::text[])[1 + (g * 40503) % array_length($2::text[], 1)]
            ELSE 'Nom' || ((g * 48271) % 300000) END,
       CASE g % 5 WHEN 0 THEN NULL WHEN 1 THEN 'Monsieur' ELSE 'Madame' END,
       'p|' || g,
       CASE WHEN g % 100 >= 5  -- in no order (x 7919 is a bijection modulo 10^8)
            THEN '+336' || lpad((((g - (g % 100 = 50)::int) * 7919) % 100000000)::text, 8, '0')
       END,
       CASE WHEN g % 100 BETWEEN 2 AND 4 THEN '+333' || lpad(g::text, 8, '0') END,
       'sms', 'D' || (SELECT count(*) FROM unnest($3::int[]) AS b WHERE b < g), now(), now()
FROM generate_series(1, $4::bigint) AS g
"""
# fmt: off
FIRST = ["Jeanne", "Marie", "Paul", "Ahmed", "Fatou", "Lucien", "Irène", "Hélène", "Noël",
         "Zoé", "Louis", "Gabriel", "Léa", "Chloé", "Mohamed", "Yasmine", "Jules", "Inès"]
LAST = ["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand",
        "Leroy", "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "David",
        "Bertrand", "Roux", "Vincent", "Fournier", "Morel", "Girard", "André", "Lefebvre",
        "Mercier", "Dupont", "Lambert", "Bonnet", "François", "Martinez", "Nguyen", "Diallo",
        "Benoît", "Brûlé", "Dumônt", "Traoré", "Da Silva", "N'Diaye", "Lemaître", "Côté"]
# fmt: on


async def _populate(url: str, people: int, sizes: list[int]) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://"))
    try:
        # District k holds the people between sizes[k-1] and sizes[k].
        await conn.execute(FILL_SQL, FIRST, LAST, sizes, people)
        await conn.execute(
            "INSERT INTO membership (person_id, segment, source, created_at) "
            "SELECT id, 'domicilies', 'probe', now() FROM person"
        )
        await conn.execute(
            "INSERT INTO opt_out (address, channel, active, source, created_at) "
            "SELECT DISTINCT mobile, 'sms', true, 'probe', now() FROM person "
            "WHERE mobile IS NOT NULL AND id % 50 = 7"
        )
        await conn.execute("VACUUM ANALYZE person")
        await conn.execute("VACUUM ANALYZE membership")
        await conn.execute("VACUUM ANALYZE opt_out")
    finally:
        await conn.close()


async def _child(url: str, people: int, districts: list[str], body: str) -> dict[str, Any]:
    """One launch in this process (fresh): its time, counts and peak memory."""
    import resource

    from tortoise import Tortoise

    from campaigns.campaign import launch as campaign_launch
    from campaigns.campaign import lifecycle as campaign_service
    from campaigns.core.audit import Actor
    from campaigns.core.runtime import offline_runtime
    from campaigns.core.settings import Settings
    from campaigns.messages.template_store import TemplateContent, create_template
    from campaigns.models import Audience, CampaignRun, Message

    await init_db(url)
    try:
        settings = Settings(
            CAMPAIGNS_DATABASE_URL=url,
            CAMPAIGNS_SECRET_KEY="k" * 32,
            _env_file=None,  # type: ignore[call-arg]
        )
        runtime = offline_runtime(settings)  # no queue: the launch alone is measured
        actor = Actor(None, "probe")
        template = await create_template("Probe", "sms", TemplateContent(body), actor=actor)
        criteria = {"segments_any": ["domicilies"], "districts": districts}
        audience = await Audience.create(name=f"Probe {people}", criteria=criteria)
        campaign = await campaign_service.create_campaign(
            name="Probe",
            channel="sms",
            template_id=template.id,
            audience_id=audience.id,
            actor=actor,
            settings=settings,
            now=runtime.clock(),
        )
        db = Tortoise.get_connection("default")
        wal_before = (await db.execute_query_dict("SELECT pg_current_wal_lsn() AS lsn"))[0]["lsn"]
        rss_before = peak_rss_mb()
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        result = await campaign_launch.launch(campaign.id, actor=actor, runtime=runtime)
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        rss_peak = peak_rss_mb()
        wal = await db.execute_query_dict(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1) AS bytes", [wal_before]
        )
        # Read before the connections close: an ended backend takes its CPU time with it.
        backends = await db.execute_query_dict(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        )
        backend_cpu = backend_cpu_seconds(int(r["pid"]) for r in backends)
        written = await Message.filter(campaign_id=campaign.id).count()
        run = await CampaignRun.get(campaign_id=campaign.id)
    finally:
        await close_db()
    return {
        "people": people,
        "seconds": elapsed,
        "cpu_seconds": after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime,
        "backend_cpu_seconds": backend_cpu,
        "wal_mb": float(wal[0]["bytes"]) / 1e6,
        "rss_before_mb": rss_before,
        "rss_peak_mb": rss_peak,
        "written": written,
        "queued": result["recipients"],
        "skipped": result["skipped_by_reason"],
        "parts": result["parts"],
        "run_id": run.id,
    }


def _run_child(
    url: str, people: int, districts: list[str], body: str, profile: Path | None
) -> dict:
    command = [sys.executable, __file__, "--child", url, "--people", str(people)]
    command += ["--districts", ",".join(districts), "--body", body]
    pyspy = shutil.which("py-spy") or os.environ.get("PY_SPY")
    if profile is not None and pyspy:
        profile.mkdir(parents=True, exist_ok=True)
        flame = profile / f"launch_{people}.txt"
        # --idle: the samples spent waiting on the database count too (wall time).
        command = [pyspy, "record", "--idle", "-r", "250", "-f", "raw", "-o", str(flame), "--",
                   *command]  # fmt: skip
    elif profile is not None:
        print("py-spy not found: no profile")
    pg_before = cpu_seconds_by_pid()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    # The server's own processes (WAL writer, checkpointer...) plus the launch's backends.
    pg_cpu = cpu_spent_since(pg_before, cpu_seconds_by_pid())
    if done.returncode:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"launch of {people} failed")
    if profile is not None and pyspy:
        _print_profile(profile / f"launch_{people}.txt")
    line = [x for x in done.stdout.splitlines() if x.startswith("CHILD ")][-1]
    figures = json.loads(line.removeprefix("CHILD "))
    figures["postgres_cpu_seconds"] = pg_cpu + figures["backend_cpu_seconds"]
    return figures


def _print_profile(collapsed: Path, top: int = 25) -> None:
    """The functions holding the most samples: own time, and time including callees."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        n = int(count)
        total += n
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n
    print(f"profile ({total} samples, waiting included) written to {collapsed}")
    for title, table in (("own", own), ("including callees", inclusive)):
        print(f"  top by {title}:")
        for frame, n in sorted(table.items(), key=lambda kv: -kv[1])[:top]:
            print(f"    {100 * n / total:5.1f} %  {frame}")


async def _ceiling(url: str, run_id: int) -> tuple[int, float]:
    """The database alone writing the same rows again (another run, same indexes)."""
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://"))
    try:
        columns = [
            r["column_name"]
            for r in await conn.fetch(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'message' AND column_name NOT IN ('id', 'run_id') "
                "ORDER BY ordinal_position"
            )
        ]
        names = ", ".join(f'"{c}"' for c in columns)
        async with conn.transaction():
            campaign_id = await conn.fetchval(
                "SELECT campaign_id FROM campaign_run WHERE id = $1", run_id
            )
            new_run = await conn.fetchval(
                "INSERT INTO campaign_run (campaign_id, number, started_at, recipients, skipped) "
                "VALUES ($1, 1000, now(), 0, 0) RETURNING id",
                campaign_id,
            )
            started = time.perf_counter()
            status = await conn.execute(
                f"INSERT INTO message (run_id, {names}) SELECT $1, {names} FROM message "
                "WHERE run_id = $2",
                new_run,
                run_id,
            )
            elapsed = time.perf_counter() - started
        return int(status.split()[-1]), elapsed
    finally:
        await conn.close()


async def _truncate_messages(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://"))
    try:
        await conn.execute("TRUNCATE message, message_part CASCADE")
        await conn.execute("CHECKPOINT")  # each launch starts from the same state
    finally:
        await conn.close()


async def main(sizes: list[int], body: str, profile: Path | None, keep: bool) -> None:
    sizes = sorted(sizes)
    await admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    await admin(f'CREATE DATABASE "{DATABASE}"')
    url = f"{BASE_URL}/{DATABASE}"
    print(f"load average before: {load_average()}")
    try:
        await migrate(url)
        started = time.perf_counter()
        await _populate(url, sizes[-1], sizes)
        print(f"population of {sizes[-1]:,} people: {time.perf_counter() - started:.1f} s")
        rows = []
        for index, people in enumerate(sizes):
            await _truncate_messages(url)
            districts = [f"D{k}" for k in range(index + 1)]
            figures = _run_child(url, people, districts, body, profile if index == 0 else None)
            rows.append(figures)
            print(
                f"  {people:>9,}: {figures['seconds']:6.2f} s, "
                f"{figures['seconds'] / people * 100_000:5.2f} s per 100k, "
                f"peak RSS {figures['rss_peak_mb']:.0f} MB "
                f"(before the launch {figures['rss_before_mb']:.0f} MB), "
                f"CPU launcher {figures['cpu_seconds']:.1f} s, "
                f"PostgreSQL {figures['postgres_cpu_seconds']:.1f} s, "
                f"WAL {figures['wal_mb']:.0f} MB"
            )
        largest = rows[-1]
        copied, ceiling_s = await _ceiling(url, largest["run_id"])
        _report(rows, copied, ceiling_s, body)
    finally:
        await close_db()
        if not keep:
            await admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


def _report(rows: list[dict[str, Any]], copied: int, ceiling_s: float, body: str) -> None:
    largest, smallest = rows[-1], rows[0]
    print()
    print(f"launch on PostgreSQL, template '{body}' (load average after: {load_average()})")
    print(f"{'people':>10} {'launch s':>9} {'s/100k':>7} {'msg/s':>9} {'peak RSS MB':>12} "
          f"{'CPU py s':>9} {'CPU pg s':>9}")  # fmt: skip
    for r in rows:
        print(
            f"{r['people']:>10,} {r['seconds']:>9.2f} {r['seconds'] / r['people'] * 1e5:>7.2f} "
            f"{r['written'] / r['seconds']:>9,.0f} {r['rss_peak_mb']:>12.0f} "
            f"{r['cpu_seconds']:>9.1f} {r['postgres_cpu_seconds']:>9.1f}"
        )
    print(f"  largest: {largest['written']:,} messages, queued {largest['queued']:,}, "
          f"skipped {largest['skipped']}, parts {largest['parts']:,}")  # fmt: skip
    growth = (largest["seconds"] / largest["people"]) / (smallest["seconds"] / smallest["people"])
    print(f"  cost per person, largest / smallest: {growth:.2f} (1.00 = linear)")
    if len(rows) >= 3:
        # Between sizes, so that what every launch pays once (a process starting, the
        # first batch) does not flatter the large ones.
        first = (rows[1]["seconds"] - rows[0]["seconds"]) / (rows[1]["people"] - rows[0]["people"])
        last = (rows[-1]["seconds"] - rows[-2]["seconds"]) / (
            rows[-1]["people"] - rows[-2]["people"]
        )
        growth = last / first
        print(f"  marginal cost per person, last step / first step: {growth:.2f} (1.00 = linear)")
    rate, ceiling = largest["written"] / largest["seconds"], copied / ceiling_s
    print(
        f"  ceiling: PostgreSQL alone writes the same {copied:,} rows in {ceiling_s:.2f} s "
        f"({ceiling:,.0f} rows/s); launch {rate:,.0f} msg/s, ratio {rate / ceiling:.2f}"
    )
    met = largest["people"] < 1_000_000 or (
        largest["seconds"] < 30 and largest["rss_peak_mb"] < 300
    )
    print(f"  target (1,000,000 under 30 s, under 300 MB): {'met' if met else 'NOT met'}")
    label = f"{largest['people'] // 1000}k"
    emit_result(
        [
            *(
                {"name": f"launch {r['people'] // 1000}k", "value": r["seconds"], "unit": "s"}
                for r in rows
            ),
            {
                "name": f"launch {label} rate",
                "value": rate,
                "unit": "msg/s",
                "ceiling": ceiling,
            },
            {"name": f"launch {label} peak RSS", "value": largest["rss_peak_mb"], "unit": "MB"},
            {
                "name": "launch cost growth (per person, last / first)",
                "value": growth,
                "unit": "x",
            },
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES}")
    parser.add_argument("--body", choices=sorted(BODIES), default="civility")
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--people", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--districts", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        figures = asyncio.run(
            _child(args.child, args.people, args.districts.split(","), BODIES[args.body])
        )
        print("CHILD " + json.dumps(figures))
    else:
        chosen = QUICK_SIZES if args.quick else tuple(int(s) for s in args.sizes.split(","))
        asyncio.run(main(list(chosen), args.body, args.profile, args.keep))

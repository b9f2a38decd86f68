"""What the benchmarks share: the server, its admin connection, names, how figures are printed."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

BASE_URL = os.environ.get("CAMPAIGNS_BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
FIRST = ("Jeanne", "Marie", "Paul", "Ahmed", "Fatou", "Lucien", "Irène", "Hélène", "Noël")
PERSON_COLUMNS = [
    "civility",
    "first_name",
    "last_name",
    "identity_key",
    "mobile",
    "landline",
    "preferred_channel",
    "created_at",
    "updated_at",
]
LAST = ("Martin", "Bernard", "Dubois", "Lefèvre", "Moreau", "Nguyen", "Diallo", "Mercier")


async def admin(sql: str) -> None:
    """Run one statement on the server's `postgres` database (create or drop a bench database)."""
    conn = await asyncpg.connect(BASE_URL.replace("postgres://", "postgresql://") + "/postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def copy_people(
    url: str,
    people: int,
    *,
    seed: int,
    source: str,
    phones: Callable[[int, random.Random], tuple[str | None, str | None]],
) -> list[str]:
    """People in the `domicilies` segment, loaded with COPY (the benches measure what follows).

    `phones(i, rng)` gives each person's (mobile, landline); the mobiles are returned.
    """
    rng = random.Random(seed)
    now = datetime.now(UTC)
    rows, mobiles = [], []
    for i in range(people):
        mobile, landline = phones(i, rng)
        if mobile:
            mobiles.append(mobile)
        last = rng.choice(LAST)
        civility = "Madame" if i % 2 else "Monsieur"
        identity = f"{last.lower()}|{i}"
        rows.append(
            (civility, rng.choice(FIRST), last, identity, mobile, landline, "sms", now, now)
        )
    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://"))
    try:
        await conn.copy_records_to_table("person", records=rows, columns=PERSON_COLUMNS)
        await conn.execute(
            "INSERT INTO membership (person_id, segment, source, created_at) "
            "SELECT id, 'domicilies', $1, now() FROM person",
            source,
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return mobiles


def process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) so far of one process, 0 once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_role(roles: dict[str, list[int]], *, redis: bool = False) -> dict[str, Any]:
    """CPU seconds so far of the processes of each role, and of PostgreSQL's processes
    (and of Redis's, if asked)."""
    spent: dict[str, Any] = {
        role: sum(process_cpu_seconds(pid) for pid in pids) for role, pids in roles.items()
    }
    spent["PostgreSQL"] = cpu_seconds_by_pid()
    if redis:
        spent["Redis"] = cpu_seconds_by_pid("redis-server")
    return spent


def cpu_report(before: dict[str, Any], after: dict[str, Any], units: int) -> str:
    """'role 1.23, ...': CPU milliseconds per unit of work of each role between two samples."""
    spent = {
        role: cpu_spent_since(before[role], after[role])
        if isinstance(before[role], dict)  # a server's processes, by pid
        else after[role] - before[role]
        for role in before
    }
    return ", ".join(f"{role} {seconds * 1000 / units:.2f}" for role, seconds in spent.items())


# --- figures for bench/run_all.py ---------------------------------------------------------

RESULT_PREFIX = "RESULT "


def emit_result(figures: Iterable[dict[str, Any]]) -> None:
    """Print the run's figures as one machine-readable line, last, for bench/run_all.py.

    Each figure: name, value, unit, and a ceiling (same unit) when one was measured in the
    same run; the ratio is value / ceiling.
    """
    rows = []
    for f in figures:
        ceiling = f.get("ceiling")
        ratio = f["value"] / ceiling if ceiling else None
        rows.append({"name": f["name"], "value": f["value"], "unit": f["unit"],
                     "ceiling": ceiling, "ratio": ratio})  # fmt: skip
    print(RESULT_PREFIX + json.dumps(rows), flush=True)


def load_average() -> str:
    """The 1, 5 and 15-minute load averages, as `uptime` shows them."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds_by_pid(name_prefix: str = "postgres") -> dict[int, float]:
    """CPU time (user + system) so far of every process whose name starts with the prefix."""
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended meanwhile
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        if name.startswith(name_prefix):
            fields = text[text.rindex(")") + 2 :].split()
            found[int(stat.parent.name)] = (int(fields[11]) + int(fields[12])) / ticks
    return found


def cpu_spent_since(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two samples by the processes alive in both.

    A backend that ended in between takes its time with it: whoever ran on it must
    measure it before closing its connection (see `backend_cpu_seconds`).
    """
    return sum(after[pid] - before[pid] for pid in after.keys() & before.keys())


def backend_cpu_seconds(pids: Iterable[int]) -> float:
    """CPU spent so far by these server processes (a local server: read from /proc)."""
    wanted = set(pids)
    return sum(s for pid, s in cpu_seconds_by_pid().items() if pid in wanted)

"""Benchmark of the registry on PostgreSQL: a 100,000-row import, then an audience count on 1M.

Run: `python bench/registry_bench.py` (PostgreSQL at CAMPAIGNS_BENCH_POSTGRES_URL, default
postgres://postgres@127.0.0.1:5432). It creates a database of its own and drops it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from datetime import date

import asyncpg
from bench_support import emit_result
from tortoise import Tortoise

from campaigns.core.audit import Actor
from campaigns.core.db import close_db, init_db, migrate
from campaigns.registry import audiences
from campaigns.registry.demo import DISTRICTS, LAST_NAMES, MEN, WOMEN, fold
from campaigns.registry.importer import import_register

BASE_URL = "postgres://postgres@127.0.0.1:5432"
DATABASE = "campaigns_bench_registry"
HEADER = "N° dossier;Nom;Prénom;Date de naissance;Téléphone;Courriel;Quartier;Référent"
# The same number written the ways CCAS staff write it.
PHONE_STYLES = (
    lambda d: d,
    lambda d: " ".join(d[i : i + 2] for i in range(0, 10, 2)),
    lambda d: ".".join(d[i : i + 2] for i in range(0, 10, 2)),
    lambda d: "+33" + d[1:],
    lambda d: "+33 (0)" + d[1:],
    lambda d: "0033" + d[1:],
)


def messy_phone(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.05:
        return ""
    if roll < 0.07:
        return rng.choice(("pas de tél", "NRP", "?", "06 12 3"))
    mobile = f"0{rng.choice('67')}{rng.randrange(10**8):08d}"
    if mobile[1] == "7" and mobile[2] in "012":
        mobile = "073" + mobile[3:]
    if mobile[1] == "6" and mobile[2] in "39":
        mobile = "064" + mobile[3:]
    text = rng.choice(PHONE_STYLES)(mobile)
    if roll > 0.92:
        text += f" / 03 {rng.randrange(10, 99)} {rng.randrange(10, 99)} 12 34"
    elif roll > 0.88:
        text = f"03 22 {rng.randrange(10, 99)} {rng.randrange(10, 99)} {rng.randrange(10, 99)}"
    return text


def generate_register(rows: int, *, seed: int = 7) -> bytes:
    """A register as a CCAS exports it: mixed case, phone styles, a few faulty rows."""
    rng = random.Random(seed)
    lines = [HEADER]
    for index in range(rows):
        woman = rng.random() < 0.55
        first = rng.choice(WOMEN if woman else MEN)
        last = rng.choice(LAST_NAMES)
        if rng.random() < 0.5:
            last = last.upper()
        born = f"{rng.randrange(1, 29):02d}/{rng.randrange(1, 13):02d}/{rng.randrange(1925, 2006)}"
        if rng.random() < 0.002:
            born = "31/02/1950"
        email = ""
        if rng.random() < 0.3:
            email = f"{fold(first)}{index}@example.org"
            if rng.random() < 0.05:
                email = email.replace("@", " at ")
        referent = rng.choice(("", "", "a.nguyen@ccas.example", "c.martin@ccas.example"))
        ref = f"B{index:07d}" if rng.random() > 0.001 or index == 0 else f"B{index - 1:07d}"
        lines.append(
            ";".join(
                (ref, last, first, born, messy_phone(rng), email, rng.choice(DISTRICTS), referent)
            )
        )
    return ("\ufeff" + "\n".join(lines) + "\n").encode("utf-8")


async def create_database(base_url: str) -> str:
    conn = await asyncpg.connect(base_url.replace("postgres://", "postgresql://") + "/postgres")
    await conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    await conn.execute(f'CREATE DATABASE "{DATABASE}"')
    await conn.close()
    return f"{base_url}/{DATABASE}"


async def drop_database(base_url: str) -> None:
    conn = await asyncpg.connect(base_url.replace("postgres://", "postgresql://") + "/postgres")
    await conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    await conn.close()


async def bench_import(rows: int) -> tuple[float, float]:
    data = generate_register(rows)
    started = time.perf_counter()
    report = await import_register(
        data, segment="aides_facultatives", actor=Actor.system(), filename="bench.csv"
    )
    elapsed = time.perf_counter() - started
    print(
        f"import: {rows} lignes en {elapsed:.1f} s = {rows / elapsed:,.0f} lignes/s "
        f"(créées {report.created}, rejetées {len(report.rejected)}, "
        f"avertissements {len(report.warnings)})"
    )
    started = time.perf_counter()
    again = await import_register(
        data, segment="aides_facultatives", actor=Actor.system(), filename="bench.csv"
    )
    elapsed_again = time.perf_counter() - started
    print(
        f"ré-import du même fichier: {elapsed_again:.1f} s = {rows / elapsed_again:,.0f} lignes/s "
        f"(inchangées {again.unchanged}, créées {again.created})"
    )
    return rows / elapsed, rows / elapsed_again


# One million people with set-based SQL: memberships, districts, phones and opt-outs
# spread the way a large town's registers would be.
FILL_SQL = """
INSERT INTO person (external_ref, first_name, last_name, identity_key, birth_date, mobile,
                    landline, email, preferred_channel, district, created_at, updated_at)
SELECT 'G' || g, 'Prénom', 'Nom' || (g % 5000), 'nom' || (g % 5000) || '|prenom|' || g,
       DATE '1930-01-01' + (g % 27000),
       CASE WHEN g % 10 < 8 THEN '+336' || lpad((g % 100000000)::text, 8, '0') END,
       CASE WHEN g % 10 >= 7 THEN '+333' || lpad((g % 100000000)::text, 8, '0') END,
       CASE WHEN g % 4 = 0 THEN 'p' || g || '@example.org' END,
       'sms', ($1::text[])[(g % {districts}) + 1], now(), now()
FROM generate_series(1, {people}) AS g;
"""
MEMBERSHIP_SQL = """
INSERT INTO membership (person_id, segment, source, created_at)
SELECT id, seg, 'bench', now() FROM person
CROSS JOIN LATERAL (VALUES
  (CASE WHEN id % 100 < 60 THEN 'aides_facultatives' END),
  (CASE WHEN id % 100 >= 55 AND id % 100 < 75 THEN 'registre_fragiles' END),
  (CASE WHEN id % 100 >= 70 AND id % 100 < 90 THEN 'animations' END),
  (CASE WHEN id % 100 >= 90 THEN 'domicilies' END)
) AS s(seg) WHERE seg IS NOT NULL;
"""
OPT_OUT_SQL = """
INSERT INTO opt_out (address, channel, active, source, created_at)
SELECT mobile, 'sms', true, 'bench', now() FROM person
WHERE mobile IS NOT NULL AND id % 50 = 0
ON CONFLICT DO NOTHING;
"""


async def fill_million(people: int) -> None:
    conn = Tortoise.get_connection("default")
    started = time.perf_counter()
    await conn.execute_script("TRUNCATE person, membership, opt_out RESTART IDENTITY CASCADE")
    await conn.execute_query(
        FILL_SQL.format(people=people, districts=len(DISTRICTS)), [list(DISTRICTS)]
    )
    await conn.execute_script(MEMBERSHIP_SQL)
    await conn.execute_script(OPT_OUT_SQL)
    await conn.execute_script("ANALYZE person; ANALYZE membership; ANALYZE opt_out;")
    print(f"remplissage: {people:,} personnes en {time.perf_counter() - started:.1f} s")


async def bench_count(runs: int, label: str, *, explain: bool) -> float:
    criteria = {"segments_any": ["registre_fragiles"], "districts": ["Nord"], "channel": "sms"}
    timings = []
    result = 0
    for _ in range(runs):
        started = time.perf_counter()
        result = await audiences.count(criteria)
        timings.append((time.perf_counter() - started) * 1000)
    median = statistics.median(timings)
    print(
        f"comptage segment + quartier + SMS joignable ({label}): {result:,} personnes, "
        f"médiane {median:.0f} ms sur {runs} (min {min(timings):.0f}, max {max(timings):.0f})"
    )
    if explain:
        query = audiences.audience_query(criteria, date.today()).count()
        query._choose_db_if_not_chosen()
        query._make_query()
        sql, params = query.query.get_parameterized_sql()
        conn = Tortoise.get_connection("default")
        plan = await conn.execute_query_dict("EXPLAIN ANALYZE " + sql, params)
        print("\n".join(row["QUERY PLAN"] for row in plan))
    return median


async def vacuum() -> None:
    # What autovacuum does to a table soon after a bulk load: it sets the visibility map,
    # which index-only scans need.
    conn = Tortoise.get_connection("default")
    for table in ("person", "membership", "opt_out"):
        await conn.execute_script(f"VACUUM ANALYZE {table}")


async def main(argv: list[str] | None = None) -> None:
    import os

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="ne pas supprimer la base")
    parser.add_argument(
        "--count-only", action="store_true", help="compter sur une base gardée (--keep)"
    )
    args = parser.parse_args(argv)
    base = os.environ.get("CAMPAIGNS_BENCH_POSTGRES_URL", BASE_URL).rstrip("/")
    url = f"{base}/{DATABASE}" if args.count_only else await create_database(base)
    try:
        await migrate(url)
        await init_db(url)
        try:
            figures = []  # for bench/run_all.py
            if not args.count_only:
                imported, again = await bench_import(args.rows)
                await fill_million(args.people)
                loaded = await bench_count(args.runs, "juste après le chargement", explain=False)
                figures += [
                    {"name": "registry import", "value": imported, "unit": "rows/s"},
                    {"name": "registry re-import (unchanged)", "value": again, "unit": "rows/s"},
                    {"name": f"audience count on {args.people:,} people, after the load",
                     "value": loaded, "unit": "ms"},
                ]  # fmt: skip
            await vacuum()
            counted = await bench_count(args.runs, "après VACUUM", explain=True)
            figures.append({"name": f"audience count on {args.people:,} people, after VACUUM",
                            "value": counted, "unit": "ms"})  # fmt: skip
            emit_result(figures)
        finally:
            await close_db()
    finally:
        if not args.keep:
            await drop_database(base)


if __name__ == "__main__":
    asyncio.run(main())

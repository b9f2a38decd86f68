"""What the launch and dispatch benchmarks share: the server, its admin connection, names."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from datetime import UTC, datetime

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

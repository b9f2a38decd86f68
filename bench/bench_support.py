"""What the launch and dispatch benchmarks share: the server, its admin connection, names."""

from __future__ import annotations

import os

import asyncpg

BASE_URL = os.environ.get("CAMPAIGNS_BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
FIRST = ("Jeanne", "Marie", "Paul", "Ahmed", "Fatou", "Lucien", "Irène", "Hélène", "Noël")
LAST = ("Martin", "Bernard", "Dubois", "Lefèvre", "Moreau", "Nguyen", "Diallo", "Mercier")


async def admin(sql: str) -> None:
    """Run one statement on the server's `postgres` database (create or drop a bench database)."""
    conn = await asyncpg.connect(BASE_URL.replace("postgres://", "postgresql://") + "/postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()

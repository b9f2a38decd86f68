"""Set-based writes for dispatch and receipts: one statement per table, on both engines.

PostgreSQL takes whole columns as arrays (`unnest`), so a few hundred rows cost one
round trip; SQLite (one process, a local file) takes an `executemany`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from campaigns.core.db import on_postgres

__all__ = ["bulk_update", "bulk_upsert"]


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    return [[row[i] for row in rows] for i in range(width)]


async def bulk_update(
    conn: BaseDBAsyncClient,
    table: str,
    key: tuple[str, str],
    columns: Sequence[tuple[str, str]],
    rows: Sequence[Sequence[Any]],
) -> None:
    """UPDATE `table` SET each column to its value WHERE `key` matches, row by row.

    `key` and `columns` are (name, PostgreSQL type); each row is (key, *values).
    Rows are written in key order: concurrent writers lock in one order.
    """
    if not rows:
        return
    rows = sorted(rows, key=lambda row: row[0])
    names = [key[0], *(name for name, _ in columns)]
    if on_postgres(conn):
        types = [key[1], *(kind for _, kind in columns)]
        arrays = ", ".join(f"${i + 1}::{kind}[]" for i, kind in enumerate(types))
        sets = ", ".join(f'"{name}" = v."{name}"' for name, _ in columns)
        quoted = ", ".join(f'"{name}"' for name in names)
        sql = (
            f'UPDATE "{table}" AS t SET {sets} FROM unnest({arrays}) AS v({quoted}) '
            f'WHERE t."{key[0]}" = v."{key[0]}"'
        )
        await conn.execute_query(sql, _columns(rows, len(names)))
        return
    sets = ", ".join(f'"{name}" = ?' for name, _ in columns)
    sql = f'UPDATE "{table}" SET {sets} WHERE "{key[0]}" = ?'
    await conn.execute_many(sql, [[*row[1:], row[0]] for row in rows])


async def bulk_upsert(
    conn: BaseDBAsyncClient,
    table: str,
    conflict: str,
    columns: Sequence[tuple[str, str]],
    rows: Sequence[Sequence[Any]],
    update: Sequence[str],
) -> None:
    """INSERT rows; where `conflict` (a unique column) exists, set the `update` columns."""
    if not rows:
        return
    names = [name for name, _ in columns]
    quoted = ", ".join(f'"{name}"' for name in names)
    sets = ", ".join(f'"{name}" = excluded."{name}"' for name in update)
    action = f"DO UPDATE SET {sets}" if update else "DO NOTHING"
    if on_postgres(conn):
        arrays = ", ".join(f"${i + 1}::{kind}[]" for i, (_, kind) in enumerate(columns))
        sql = (
            f'INSERT INTO "{table}" ({quoted}) SELECT * FROM unnest({arrays}) '
            f'ON CONFLICT ("{conflict}") {action}'
        )
        await conn.execute_query(sql, _columns(rows, len(names)))
        return
    marks = ", ".join("?" for _ in names)
    sql = f'INSERT INTO "{table}" ({quoted}) VALUES ({marks}) ON CONFLICT ("{conflict}") {action}'
    await conn.execute_many(sql, [list(row) for row in rows])

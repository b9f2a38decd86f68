"""Multi-row INSERT ... ON CONFLICT DO NOTHING for the webhooks' group commit.

One statement for a batch of rows instead of one per request: the round trips, not the
rows, are what a webhook request costs. Rows already stored (Vonage's retries) are
skipped without an exception and without aborting the others.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from tortoise import connections
from tortoise.models import Model

from campaigns.core.db import on_postgres, placeholders

__all__ = ["db_row", "insert_rows"]

# SQLite before 3.32 binds at most 999 variables per statement; PostgreSQL 32,767.
_SQLITE_MAX_VARIABLES = 999
_POSTGRES_MAX_VARIABLES = 32_767


def db_row(model: type[Model], values: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A row's columns and database values, defaults filled in (the pk and nulls left out)."""
    meta = model._meta
    row: dict[str, Any] = {}
    for name, field in meta.fields_map.items():
        if name == meta.pk_attr or name not in meta.fields_db_projection:
            continue
        if name in values:
            value = values[name]
        elif getattr(field, "auto_now_add", False) or getattr(field, "auto_now", False):
            value = now
        else:
            value = field.default() if callable(field.default) else field.default
        if value is None and field.null:
            continue
        row[meta.fields_db_projection[name]] = field.to_db_value(value, None)  # type: ignore[arg-type]
    return row


async def insert_rows(
    model: type[Model],
    values: Sequence[dict[str, Any]],
    now: datetime,
    key: tuple[str, ...] = ("provider_message_id",),
) -> dict[Any, int]:
    """Multi-row INSERT ... ON CONFLICT DO NOTHING: key -> id of each row inserted (the key
    is the value of its one column, or the tuple of its columns' values).

    Rows whose provider id is already stored are skipped (Vonage's retries), without an
    exception and without aborting the others. Split to stay under the engine's limit of
    bound variables.
    """
    if not values:
        return {}
    conn = connections.get(model._meta.default_connection or "default")
    rows = _rows(model, values, now)
    # A nullable column left out of one row (its value is None) is NULL in the shared list.
    columns = tuple(dict.fromkeys(column for row in rows for column in row))
    limit = _POSTGRES_MAX_VARIABLES if on_postgres(conn) else _SQLITE_MAX_VARIABLES
    per_statement = max(1, limit // len(columns))
    inserted: dict[Any, int] = {}
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        marks = placeholders(len(chunk) * len(columns), conn)
        sql = _multi_insert_sql(model._meta.db_table, columns, tuple(marks), len(columns), key)
        params = [row.get(column) for row in chunk for column in columns]
        for found in await conn.execute_query_dict(sql, params):
            name = found[key[0]] if len(key) == 1 else tuple(found[k] for k in key)
            inserted[name] = int(found["id"])
    return inserted


def _rows(
    model: type[Model], values: Sequence[dict[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    """Like `db_row` for each, with the defaults converted once for the whole batch: the
    conversion of every field of every row was most of a batch's CPU."""
    meta = model._meta
    first = values[0]
    given_columns = {meta.fields_db_projection[name] for name in first}
    defaults = {c: v for c, v in db_row(model, first, now).items() if c not in given_columns}
    rows = []
    for given in values:
        if given.keys() != first.keys():  # another shape: its own defaults
            rows.append(db_row(model, given, now))
            continue
        row = dict(defaults)
        for name, value in given.items():
            field = meta.fields_map[name]
            row[meta.fields_db_projection[name]] = (
                None if value is None and field.null else field.to_db_value(value, None)  # type: ignore[arg-type]
            )
        rows.append(row)
    return rows


@functools.lru_cache(maxsize=64)
def _multi_insert_sql(
    table: str, columns: tuple[str, ...], marks: tuple[str, ...], width: int, key: tuple[str, ...]
) -> str:
    quoted = ", ".join(f'"{column}"' for column in columns)
    groups = ", ".join(
        "(" + ", ".join(marks[i : i + width]) + ")" for i in range(0, len(marks), width)
    )
    return (
        f'INSERT INTO "{table}" ({quoted}) VALUES {groups} '
        'ON CONFLICT DO NOTHING RETURNING "id", ' + ", ".join(f'"{k}"' for k in key)
    )

"""Writing an import in bulk: new people, changed people and memberships, in plain SQL.

Building ORM objects would cost more than the database work: PostgreSQL gets one
``INSERT ... SELECT FROM unnest(arrays)`` per batch, SQLite an ``executemany``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from campaigns.core.clock import utcnow
from campaigns.core.db import on_postgres
from campaigns.models import Membership, Person
from campaigns.registry.register_rows import RegisterRow

__all__ = [
    "FRAGILE_FIELDS",
    "PERSON_FIELDS",
    "PlannedRow",
    "chunks",
    "create_people",
    "insert_many",
    "update_people",
    "write_memberships",
]

# Small enough for SQLite's bound-variable limit, large enough to keep round trips few.
WRITE_BATCH = 1000
# The person fields a register row can set; an empty cell never erases a value already held
# (a person in two registers must not lose the e-mail one of them lacks).
PERSON_FIELDS = (
    "civility",
    "last_name",
    "first_name",
    "birth_date",
    "mobile",
    "landline",
    "email",
    "address",
    "district",
    "referent_email",
)
# What the law allows the fragile-people register to hold besides the person (DOMAIN.md).
FRAGILE_FIELDS = (
    "category",
    "registered_by",
    "acknowledged_on",
    "next_review_on",
    "emergency_contact",
    "home_care_service",
)
PERSON_COLUMNS = ("external_ref", "identity_key", "preferred_channel", *PERSON_FIELDS)
MEMBERSHIP_COLUMNS = ("person_id", "segment", "source", "started_on", *FRAGILE_FIELDS)
# PostgreSQL array types for the unnest() inserts; every other column is text.
COLUMN_TYPES = {
    "birth_date": "date",
    "started_on": "date",
    "acknowledged_on": "date",
    "next_review_on": "date",
    "person_id": "int",
}


@dataclass(slots=True)
class PlannedRow:
    """An accepted row, its person values and its identity key (computed once)."""

    source: RegisterRow
    values: dict[str, Any]
    key: str


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def insert_many(
    conn: BaseDBAsyncClient,
    table: str,
    columns: Sequence[str],
    rows: list[list[Any]],
    returning: Sequence[str] = (),
    stamps: Sequence[str] = ("created_at",),
) -> list[tuple[Any, ...]]:
    """Plain multi-row INSERTs: building ORM objects would cost more than the database work.

    On PostgreSQL one INSERT ... SELECT FROM unnest(arrays) per batch, returning the
    asked columns; on SQLite an executemany (then nothing is returned).
    """
    if not rows:
        return []
    names = ", ".join(f'"{c}"' for c in (*columns, *stamps))
    returned: list[tuple[Any, ...]] = []
    if on_postgres(conn):
        arrays = ", ".join(
            f"${i}::{COLUMN_TYPES.get(c, 'text')}[]" for i, c in enumerate(columns, start=1)
        )
        times = ", now()" * len(stamps)
        sql = f'INSERT INTO "{table}" ({names}) SELECT *{times} FROM unnest({arrays})'
        if returning:
            sql += " RETURNING " + ", ".join(f'"{c}"' for c in returning)
        for chunk in chunks(rows, WRITE_BATCH * 5):
            values = [list(column) for column in zip(*chunk, strict=True)]
            if returning:
                found = await conn.execute_query_dict(sql, values)
                returned += [tuple(r[c] for c in returning) for r in found]
            else:
                await conn.execute_query(sql, values)
        return returned
    # The SQLite driver stores dates and times as tortoise reads them back: ISO text.
    now = utcnow().isoformat(" ")
    marks = ", ".join("?" for _ in (*columns, *stamps))
    sql = f'INSERT INTO "{table}" ({names}) VALUES ({marks})'
    for chunk in chunks(rows, WRITE_BATCH * 5):
        await conn.execute_many(
            sql, [[*map(_sqlite_value, row), *[now] * len(stamps)] for row in chunk]
        )
    return returned


def _sqlite_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


async def create_people(
    conn: BaseDBAsyncClient, creates: list[PlannedRow]
) -> list[tuple[RegisterRow, int]]:
    """Insert the new people and return each row with its new id."""
    if not creates:
        return []
    before = await Person.all().using_db(conn).order_by("-id").first().values_list("id", flat=True)
    new = await insert_many(
        conn,
        "person",
        PERSON_COLUMNS,
        [
            [
                r.source.external_ref,
                r.key,
                "email" if r.values["email"] and not r.values["mobile"] else "sms",
                *(r.values[name] for name in PERSON_FIELDS),
            ]
            for r in creates
        ],
        returning=("id", "external_ref", "identity_key"),
        stamps=("created_at", "updated_at"),
    )
    if not new:
        # SQLite: read the new ids back (it has a single writer, so every person above
        # `before` is one of ours).
        new = await (
            Person.filter(id__gt=before or 0)
            .using_db(conn)
            .order_by("id")
            .values_list("id", "external_ref", "identity_key")
        )
    by_ref = {ref: pid for pid, ref, _ in new if ref}
    by_key: dict[str, list[int]] = {}
    for pid, ref, key in sorted(new):
        if not ref:
            by_key.setdefault(key, []).append(pid)
    return [
        (
            r.source,
            by_ref[r.source.external_ref] if r.source.external_ref else by_key[r.key].pop(0),
        )
        for r in creates
    ]


async def update_people(conn: BaseDBAsyncClient, updates: dict[int, dict[str, Any]]) -> None:
    # One UPDATE per batch of people sharing the same set of changed columns.
    now = utcnow()
    groups: dict[tuple[str, ...], list[Person]] = {}
    for person_id, changed in updates.items():
        person = Person(id=person_id, updated_at=now, **changed)
        groups.setdefault(tuple(sorted(changed)), []).append(person)
    for columns, people in groups.items():
        await Person.bulk_update(
            people, fields=[*columns, "updated_at"], batch_size=WRITE_BATCH // 2, using_db=conn
        )


async def write_memberships(
    conn: BaseDBAsyncClient,
    segment: str,
    source: str,
    to_add: dict[int, dict[str, Any]],
    to_change: dict[int, tuple[int, dict[str, Any]]],
) -> None:
    today = date.today()
    await insert_many(
        conn,
        "membership",
        MEMBERSHIP_COLUMNS,
        [
            [pid, segment, source[:200], today, *(fragile.get(f) for f in FRAGILE_FIELDS)]
            for pid, fragile in to_add.items()
        ],
    )
    for membership_id, changed in to_change.values():
        await Membership.filter(id=membership_id).using_db(conn).update(**changed)

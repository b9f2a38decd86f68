"""Storing a delivery receipt as it arrives: one INSERT, no lock on any message.

The status webhook calls `store_receipt` and answers; `request_apply` then asks for the
`apply_receipts` job (see `campaigns.dispatch.receipts`), coalesced: one job per
`APPLY_EVERY` seconds, whatever the number of receipts, and one enqueue per process and
period. A receipt stored while the queue is away is applied by the minute's tick.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from tortoise import connections

from campaigns.core.db import on_postgres, placeholders
from campaigns.core.runtime import Runtime
from campaigns.models import DeliveryReceipt
from providers.base import DeliveryReceipt as Receipt

__all__ = ["APPLY_EVERY", "APPLY_JOB", "request_apply", "store_receipt", "store_receipts"]

log = logging.getLogger(__name__)

APPLY_JOB = "apply_receipts"
APPLY_EVERY = 0.2  # seconds: receipts wait at most this long (plus the queue's poll)
_SQLITE_VARIABLES = 999  # bound parameters per statement SQLite accepts
_COLUMNS = (
    "provider_message_id",
    "status",
    "err_code",
    "error_text",
    "price",
    "client_ref",
    "message_timestamp",
    "received_at",
)


@functools.lru_cache(maxsize=4)
def _insert_sql(marks: tuple[str, ...]) -> str:
    table = DeliveryReceipt._meta.db_table
    columns = ", ".join(f'"{c}"' for c in _COLUMNS)
    return (
        f'INSERT INTO "{table}" ({columns}) VALUES ({", ".join(marks)}) '
        'ON CONFLICT DO NOTHING RETURNING "id"'
    )


def _values(receipt: Receipt, now: datetime) -> list[Any]:
    """The row of a receipt, cut to the table's columns."""
    return [
        receipt.message_id[:64],
        receipt.status[:12],
        receipt.err_code[:8] or None,
        receipt.error_text[:255],
        receipt.price,
        (receipt.client_ref or "")[:100] or None,
        receipt.message_timestamp,
        now,
    ]


async def store_receipt(receipt: Receipt, now: datetime) -> str:
    """Store a receipt once: "stored", or "duplicate" for a retry of one already held."""
    conn = connections.get("default")
    values = _values(receipt, now)
    rows = await conn.execute_query_dict(
        _insert_sql(tuple(placeholders(len(values), conn))), values
    )
    return "stored" if rows else "duplicate"


@functools.lru_cache(maxsize=64)
def _insert_many_sql(rows: int, postgres: bool) -> str:
    width = len(_COLUMNS)
    if postgres:
        marks = [
            "(" + ", ".join(f"${r * width + c + 1}" for c in range(width)) + ")"
            for r in range(rows)
        ]
    else:
        marks = ["(" + ", ".join("?" * width) + ")"] * rows
    columns = ", ".join(f'"{c}"' for c in _COLUMNS)
    return (
        f'INSERT INTO "{DeliveryReceipt._meta.db_table}" ({columns}) VALUES {", ".join(marks)} '
        'ON CONFLICT DO NOTHING RETURNING "provider_message_id", "status"'
    )


async def store_receipts(receipts: Sequence[Receipt], now: datetime) -> list[str]:
    """Store many receipts with one INSERT per few hundred (the webhook's group commit);
    for each, in order, "stored" or "duplicate" (also for a repeat within `receipts`)."""
    if not receipts:
        return []
    conn = connections.get("default")
    postgres = on_postgres(conn)
    per_statement = 256 if postgres else _SQLITE_VARIABLES // len(_COLUMNS)
    inserted: set[tuple[str, str]] = set()
    for start in range(0, len(receipts), per_statement):
        chunk = receipts[start : start + per_statement]
        params = [value for receipt in chunk for value in _values(receipt, now)]
        rows = await conn.execute_query_dict(_insert_many_sql(len(chunk), postgres), params)
        inserted.update((row["provider_message_id"], row["status"]) for row in rows)
    outcomes = []
    for receipt in receipts:
        key = (receipt.message_id[:64], receipt.status[:12])
        outcomes.append("stored" if key in inserted else "duplicate")
        inserted.discard(key)  # the same receipt twice: the first one is the stored one
    return outcomes


async def request_apply(runtime: Runtime, *, after: float = 0.0) -> None:
    """Ask for an `apply_receipts` job due at the end of the current period (coalesced);
    `after` seconds from now at the earliest."""
    moment = time.time() + after
    period = int(moment / APPLY_EVERY) + 1
    if runtime.state.receipts_period == period:
        return  # this process already asked for that period's job
    runtime.state.receipts_period = period
    outage = runtime.state.receipts_queue_outage
    try:
        await runtime.queue.enqueue(
            APPLY_JOB,
            job_id=f"receipts:{period}",
            defer_by=period * APPLY_EVERY - moment + after,
        )
    except Exception as exc:
        # Stored all the same: the minute's tick applies what no job was asked for.
        outage.failed(exc)
        return
    await outage.recovered()

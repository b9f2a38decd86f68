"""Storing a batch of delivery receipts with one INSERT (the status webhook's group commit).

Uses `campaigns.dispatch.receipt_store.store_receipts(receipts, now)` when that module
offers it; until then, one multi-row INSERT with the columns and bounds of its
`store_receipt`, so that the rows are the ones its applier expects.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from campaigns.core.batch_insert import insert_rows
from campaigns.dispatch import receipt_store
from campaigns.models import DeliveryReceipt
from providers.base import DeliveryReceipt as Receipt

__all__ = ["store_receipts"]

_KEY = ("provider_message_id", "status")


def _values(receipt: Receipt, now: datetime) -> dict[str, Any]:
    # The bounds of receipt_store.store_receipt, which fit the table's columns.
    return {
        "provider_message_id": receipt.message_id[:64],
        "status": receipt.status[:12],
        "err_code": receipt.err_code[:8] or None,
        "error_text": receipt.error_text[:255],
        "price": receipt.price,
        "client_ref": (receipt.client_ref or "")[:100] or None,
        "message_timestamp": receipt.message_timestamp,
        "received_at": now,
    }


async def store_receipts(receipts: Sequence[Receipt], now: datetime) -> list[str]:
    """Store receipts once each: "stored", or "duplicate" for a retry of one already held."""
    own = getattr(receipt_store, "store_receipts", None)
    if own is not None:
        return list(await own(receipts, now))
    if not receipts:
        return []
    rows = [_values(receipt, now) for receipt in receipts]
    inserted = set(await insert_rows(DeliveryReceipt, rows, now, key=_KEY))
    outcomes: list[str] = []
    for row in rows:
        key = (row["provider_message_id"], row["status"])
        # The same receipt twice in one batch: the first is the stored one.
        outcomes.append("stored" if key in inserted else "duplicate")
        inserted.discard(key)
    return outcomes

"""Delivery receipts: settle a message's parts, then derive the message's status from them.

Vonage sends one receipt per part, in any order, possibly more than once, possibly
before dispatch has recorded the send. A receipt is matched by the part's provider id,
else by its client-ref (our message id). A message is delivered when every part is;
failed, rejected or expired as soon as one part is (with the part's err-code in French,
as the provider's parser described it);
accepted and buffered change nothing but the part. A receipt for an `unconfirmed`
message proves it left: it becomes submitted (or delivered). Applying a receipt twice
changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from tortoise.transactions import in_transaction

from campaigns.models import Message, MessagePart, MessageStatus, Person
from providers.base import FINAL_STATUSES, DeliveryReceipt

__all__ = ["ReceiptResult", "apply_receipt", "derive_status"]

log = logging.getLogger(__name__)

M = MessageStatus
_FAILURES = {"failed": M.FAILED, "rejected": M.REJECTED, "expired": M.EXPIRED}
# Statuses a receipt may move a message out of; a receipt-settled final status (settled_at
# set) may also be revised by a later part, but never one dispatch decided (a refusal).
_OPEN = (M.SENDING, M.SUBMITTED, M.UNCONFIRMED)
# A failure read from another part than the receipt at hand, whose code that receipt
# cannot describe (only its own): the code itself follows the text.
OTHER_PART_FAILED = "Échec signalé par l'opérateur"


@dataclass(frozen=True)
class ReceiptResult:
    outcome: str  # applied, unknown
    message_id: int | None = None
    status: str | None = None


def derive_status(
    current: MessageStatus,
    segments: int,
    parts: list[tuple[str, str | None]],
    receipt: DeliveryReceipt,
) -> tuple[MessageStatus, str | None]:
    """The message status its parts' (status, err_code) imply, and the error text if failed.

    Until dispatch has recorded the provider's answer (sending, unconfirmed) the number of
    parts is taken from the message's own segment count. `receipt` is the one being
    applied: its description of its err-code is the error text.
    """
    for status, err_code in parts:
        if status in _FAILURES:
            code = (err_code or "").strip()
            text = _error_text(code, receipt)
            return _FAILURES[status], f"{text} (err-code {code or '?'})"[:255]
    expected = len(parts) if current == M.SUBMITTED else max(len(parts), segments, 1)
    delivered = sum(1 for status, _ in parts if status == "delivered")
    if parts and delivered >= expected:
        return M.DELIVERED, None
    return M.SUBMITTED, None


def _error_text(code: str, receipt: DeliveryReceipt) -> str:
    # A part's text depends on its code alone: the receipt describes any part sharing it
    # (the part row keeps the code cut to its column's 8 characters).
    if code == receipt.err_code[:8].strip():
        return receipt.error_text
    return OTHER_PART_FAILED


async def _find_message_id(receipt: DeliveryReceipt) -> tuple[int | None, bool]:
    """(message id, whether the part is already known)."""
    part = await MessagePart.filter(provider_message_id=receipt.message_id).values_list(
        "message_id", flat=True
    )
    if part:
        return part[0], True
    ref = (receipt.client_ref or "").strip()
    if ref.isdigit() and len(ref) < 19 and await Message.exists(id=int(ref)):
        return int(ref), False
    return None, False


def _message_changes(
    message: Message,
    status: MessageStatus,
    error: str | None,
    rows: list[tuple[str, str | None, Decimal | None]],
    receipt: DeliveryReceipt,
    now: datetime,
) -> dict[str, object]:
    """The columns of the message to change, given its newly derived status."""
    update: dict[str, object] = {}
    if status != message.status:
        update["status"] = status
        update["error"] = error
    if status in (M.DELIVERED, *_FAILURES.values()):
        if message.settled_at is None:
            update["settled_at"] = now
    elif message.settled_at is not None:
        update["settled_at"] = None  # a revised final status (rare): open again
    if message.sent_at is None:
        update["sent_at"] = receipt.message_timestamp or now
    if message.price is None:
        prices = [p for _, _, p in rows if p is not None]
        if prices:
            update["price"] = sum(prices, Decimal(0))
    return update


async def apply_receipt(receipt: DeliveryReceipt, now: datetime) -> ReceiptResult:
    """Record one receipt; unknown ids are acknowledged (the caller answers 2xx) and logged."""
    message_id, known = await _find_message_id(receipt)
    if message_id is None:
        log.info("delivery receipt for unknown message %s", receipt.message_id[:64])
        return ReceiptResult("unknown")
    async with in_transaction() as conn:
        # Receipts for the parts of one message are applied one after the other.
        message = (
            await Message.filter(id=message_id)
            .select_for_update()
            .only("id", "status", "segments", "settled_at", "sent_at", "price", "person_id")
            .using_db(conn)
            .first()
        )
        if message is None:
            return ReceiptResult("unknown")
        if not known:
            await MessagePart.bulk_create(
                [MessagePart(message_id=message_id, provider_message_id=receipt.message_id[:64])],
                ignore_conflicts=True,
                using_db=conn,
            )
        part = MessagePart.filter(provider_message_id=receipt.message_id).using_db(conn)
        changes: dict[str, object] = {"status": receipt.status, "err_code": receipt.err_code[:8]}
        if receipt.price is not None:
            changes["price"] = receipt.price
        if receipt.is_final:
            await part.update(**changes)
        else:
            # A late "accepted" never undoes a final status of the part.
            await part.filter(status__not_in=sorted(FINAL_STATUSES)).update(**changes)
        if message.status not in _OPEN and message.settled_at is None:
            return ReceiptResult("applied", message_id, message.status.value)
        rows = (
            await MessagePart.filter(message_id=message_id)
            .using_db(conn)
            .values_list("status", "err_code", "price")
        )
        status, error = derive_status(
            message.status, message.segments, [(s, e) for s, e, _ in rows], receipt
        )
        update = _message_changes(message, status, error, rows, receipt, now)
        if update:
            await Message.filter(id=message_id).using_db(conn).update(**update)
        if message.status in (M.SENDING, M.UNCONFIRMED) and message.person_id is not None:
            await (
                Person.filter(id=message.person_id)
                .using_db(conn)
                .update(last_contacted_at=update.get("sent_at") or message.sent_at or now)
            )
    return ReceiptResult("applied", message_id, status.value)

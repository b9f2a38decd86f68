"""Inbound SMS replies: store them idempotently, reassemble long ones, match, classify and act.

The webhook only stores (`receive_inbound`) and queues `process_reply`; everything slow or
with side effects happens in that job, which may run more than once: every step checks
what an earlier run already did.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from tortoise import connections
from tortoise.models import Model

from campaigns.core.audit import Actor
from campaigns.core.batch_insert import db_row
from campaigns.core.db import placeholders
from campaigns.models import InboundPart, MessageStatus, OptOut, Reply
from providers.base import InboundSms

if TYPE_CHECKING:
    from campaigns.core.runtime import Runtime

__all__ = [
    "MISSING_PART",
    "PART_TIMEOUT",
    "Received",
    "RetryLater",
    "assemble_parts",
    "assembled_values",
    "db_row",
    "decode_part_rows",
    "enqueue_processing",
    "existing",
    "finalise_incomplete",
    "job_id",
    "part_values",
    "receive_inbound",
    "single_values",
]

log = logging.getLogger(__name__)

PART_TIMEOUT = timedelta(minutes=10)
# A reply still unprocessed this long after it was stored lost its job (queue down): requeue.
UNPROCESSED_GRACE = timedelta(minutes=2)
# An opt-out confirmation the provider could not take (throttled) is retried by its job;
# should the job give up, the sweeper requeues it for this long.
CONFIRMATION_WINDOW = timedelta(days=1)
MISSING_PART = "[…]"
PROCESS_JOB = "process_reply"
REPLY_ACTOR = Actor(None, "réponse SMS")
# Messages that never left do not say which campaign a reply answers.
_NOT_SENT = (MessageStatus.QUEUED, MessageStatus.SKIPPED, MessageStatus.CANCELLED)


class RetryLater(Exception):
    """A transient failure: the job should run again after `defer` seconds."""

    def __init__(self, defer: float) -> None:
        super().__init__(f"retry in {defer:.0f} s")
        self.defer = defer


@dataclass(frozen=True)
class Received:
    """What storing an inbound request gave: the reply to process, if there is one yet."""

    reply_id: int | None  # None while a long SMS waits for its other parts
    duplicate: bool  # Vonage sent this messageId before


def job_id(reply_id: int) -> str:
    """The processing job's id: one job per reply, however often it is queued."""
    return f"{PROCESS_JOB}:{reply_id}"


# --- storing (the webhook's part: fast, idempotent) --------------------------------------


async def receive_inbound(sms: InboundSms, *, now: datetime) -> Received:
    """Store an inbound SMS or one part of a long one; safe to call again with the same one."""
    if sms.concat is None:
        return await _store_single(sms, now)
    return await _store_part(sms, now)


async def _insert_new(model: type[Model], values: dict[str, Any], now: datetime) -> int | None:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING id: the new row's id, or None if it existed.

    One statement and no exception on a duplicate (Vonage's retries), and none of the ORM's
    per-object work: this is the webhook's hot path. Fields left out take their defaults.
    """
    meta = model._meta
    conn = connections.get(meta.default_connection or "default")
    row = db_row(model, values, now)
    sql = _insert_sql(meta.db_table, tuple(row), tuple(placeholders(len(row), conn)))
    rows = await conn.execute_query_dict(sql, list(row.values()))
    return int(rows[0]["id"]) if rows else None


@functools.lru_cache(maxsize=32)
def _insert_sql(table: str, columns: tuple[str, ...], marks: tuple[str, ...]) -> str:
    quoted = ", ".join(f'"{column}"' for column in columns)
    return (
        f'INSERT INTO "{table}" ({quoted}) VALUES ({", ".join(marks)}) '
        'ON CONFLICT DO NOTHING RETURNING "id"'
    )


def single_values(sms: InboundSms, now: datetime) -> dict[str, Any]:
    """The reply row of a one-part SMS."""
    return {
        "provider_message_id": sms.message_id,
        "msisdn": sms.msisdn,
        "to": sms.to or None,
        "text": sms.text,
        "received_at": sms.received_at or now,
        "payload": dict(sms.raw),
    }


def part_values(sms: InboundSms, now: datetime) -> dict[str, Any]:
    """The inbound_part row of one part of a long SMS."""
    assert sms.concat is not None
    return {
        "provider_message_id": sms.message_id,
        "msisdn": sms.msisdn,
        "concat_ref": str(sms.concat.ref),
        "total": sms.concat.total,
        "part": sms.concat.part,
        "text": sms.text,
        "received_at": now,
        "payload": _part_payload(sms),
    }


async def _store_single(sms: InboundSms, now: datetime) -> Received:
    reply_id = await _insert_new(Reply, single_values(sms, now), now)
    if reply_id is None:
        return await _existing(sms.message_id)
    return Received(reply_id, duplicate=False)


async def existing(provider_message_ids: list[str]) -> dict[str, Received]:
    """What is already stored under these provider ids: the reply to (re)queue, if pending."""
    rows = await Reply.filter(provider_message_id__in=provider_message_ids).values(
        "id", "provider_message_id", "processed_at"
    )
    # An earlier attempt may have stored it and then failed to queue it: queue it again.
    return {
        row["provider_message_id"]: Received(
            row["id"] if row["processed_at"] is None else None, duplicate=True
        )
        for row in rows
    }


async def _existing(provider_message_id: str) -> Received:
    row = await Reply.filter(provider_message_id=provider_message_id).values("id", "processed_at")
    if not row:  # pragma: no cover - the conflicting row cannot vanish (replies are kept)
        return Received(None, duplicate=True)
    # An earlier attempt may have stored it and then failed to queue it: queue it again.
    pending = row[0]["processed_at"] is None
    return Received(row[0]["id"] if pending else None, duplicate=True)


async def _store_part(sms: InboundSms, now: datetime) -> Received:
    assert sms.concat is not None
    part_id = await _insert_new(InboundPart, part_values(sms, now), now)
    # Counted after the insert committed, so two processes storing the last two parts at
    # once both see the whole set (inside one transaction each would see only its own);
    # both then assemble and the reply's unique id keeps one.
    reply_id = await assemble_parts(sms.msisdn, str(sms.concat.ref), sms.concat.total, now=now)
    return Received(reply_id, duplicate=part_id is None)


def _part_payload(sms: InboundSms) -> dict[str, Any]:
    """What a part row keeps beside its columns: the request as received, and what the
    assembled reply takes from its first part (our number, the provider's time)."""
    return {
        "raw": dict(sms.raw),
        "to": sms.to,
        "provider_time": sms.received_at.isoformat() if sms.received_at else None,
    }


def _raw_request(payload: dict[str, Any]) -> dict[str, Any]:
    # Parts stored before the payload held "provider_time" are the bare request.
    return payload["raw"] if "provider_time" in payload else payload


def _provider_time(payload: dict[str, Any]) -> datetime | None:
    stamp = payload.get("provider_time")
    return datetime.fromisoformat(stamp) if isinstance(stamp, str) else None


async def assemble_parts(
    msisdn: str, concat_ref: str, total: int, *, now: datetime, force: bool = False
) -> int | None:
    """Join a long SMS's waiting parts into one reply once all are in (or, with force, now).

    Returns the id of the reply to process, or None while parts are missing (or when the
    reply was already processed). Missing parts are written MISSING_PART.
    """
    parts = await _waiting_parts(msisdn, concat_ref, total)
    values = assembled_values(msisdn, total, parts, force=force)
    if values is None:
        return None
    first_id = values["provider_message_id"]
    reply_id = await _insert_new(Reply, values, now)
    if reply_id is None:
        reply_id = (await _existing(first_id)).reply_id
    await InboundPart.filter(id__in=[part["id"] for part in parts]).update(assembled=True)
    return reply_id


def assembled_values(
    msisdn: str, total: int, parts: list[dict[str, Any]], *, force: bool = False
) -> dict[str, Any] | None:
    """The reply row a long SMS's waiting parts make, or None while parts are missing
    (unless force: missing parts are then written MISSING_PART)."""
    by_number: dict[int, dict[str, Any]] = {}
    for part in parts:
        by_number.setdefault(part["part"], part)
    if not by_number or (len(by_number) < total and not force):
        return None
    ordered = [by_number[n] for n in sorted(by_number)]
    first = ordered[0]
    text = "".join(
        by_number[n]["text"] if n in by_number else MISSING_PART for n in range(1, total + 1)
    )
    # The first present part's messageId names the reply: Vonage's concat-ref is reused over
    # time, a messageId never is.
    return {
        "provider_message_id": first["provider_message_id"],
        "msisdn": msisdn,
        "to": str(first["payload"].get("to") or "").strip() or None,
        "text": text,
        "received_at": _provider_time(first["payload"]) or first["received_at"],
        "parts": total,
        "complete": len(by_number) == total,
        "payload": {"parts": [_raw_request(part["payload"]) for part in ordered]},
    }


def decode_part_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Part rows read with plain SQL, their payload and time as the ORM would give them."""
    field = InboundPart._meta.fields_map["received_at"]
    for row in rows:
        payload = row["payload"]
        row["payload"] = json.loads(payload) if isinstance(payload, str | bytes) else payload
        row["received_at"] = field.to_python_value(row["received_at"])
    return rows


async def _waiting_parts(msisdn: str, concat_ref: str, total: int) -> list[dict[str, Any]]:
    """The unassembled parts of one long SMS, in order (plain SQL: every part runs this)."""
    conn = connections.get("default")
    one, two, three = placeholders(3, conn)
    sql = (
        'SELECT "id", "part", "provider_message_id", "text", "payload", "received_at" '
        f'FROM "inbound_part" WHERE "msisdn" = {one} AND "concat_ref" = {two} '
        f'AND "total" = {three} AND NOT "assembled" ORDER BY "part", "id"'
    )
    return decode_part_rows(await conn.execute_query_dict(sql, [msisdn, concat_ref, total]))


async def enqueue_processing(runtime: Runtime, reply_id: int) -> bool:
    """Queue the processing job; a failure is logged, not raised (the sweeper requeues)."""
    try:
        return await runtime.queue.enqueue(PROCESS_JOB, reply_id, job_id=job_id(reply_id))
    except Exception:
        log.warning("could not queue reply %s; the sweeper will", reply_id, exc_info=True)
        return False


async def finalise_incomplete(runtime: Runtime, *, after: timedelta = PART_TIMEOUT) -> list[int]:
    """Cron: assemble long SMS whose parts stopped coming, and requeue forgotten replies."""
    now = runtime.clock()
    groups = (
        await InboundPart.filter(assembled=False, received_at__lt=now - after)
        .distinct()
        .values_list("msisdn", "concat_ref", "total")
    )
    to_process: list[int] = []
    for msisdn, concat_ref, total in groups:
        reply_id = await assemble_parts(msisdn, concat_ref, total, now=now, force=True)
        if reply_id is not None:
            to_process.append(reply_id)
    forgotten: list[Any] = (
        await Reply.filter(processed_at=None, created_at__lt=now - UNPROCESSED_GRACE)
        .order_by("id")
        .limit(1000)
        .values_list("id", flat=True)
    )
    to_process += [rid for rid in forgotten if rid not in to_process]
    to_process += [rid for rid in await _owed_confirmations(now) if rid not in to_process]
    for reply_id in to_process:
        await enqueue_processing(runtime, reply_id)
    if to_process:
        log.info("finalised or requeued %d replies", len(to_process))
    return to_process


async def _owed_confirmations(now: datetime) -> list[int]:
    """Processed replies of the last day whose opt-out confirmation has still not left."""
    waiting = await Reply.filter(
        opt_out_requested=True,
        confirmation_sent_at=None,
        processed_at__lt=now - UNPROCESSED_GRACE,
        created_at__gte=now - CONFIRMATION_WINDOW,
    ).values_list("id", flat=True)
    if not waiting:
        return []
    # Only the reply that switched the opt-out on owes one (see _owes_confirmation).
    owed = await OptOut.filter(active=True, reply_id__in=list(waiting)).values_list(
        "reply_id", flat=True
    )
    return sorted(int(rid) for rid in owed)  # type: ignore[call-overload]

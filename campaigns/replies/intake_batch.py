"""Storing many inbound requests at once (the webhooks' group commit), and odd ones raw.

`store_many` writes a batch of inbound SMS with one multi-row INSERT per table instead of
one per request: the round trips, not the rows, are what a webhook request costs. It keeps
`receive_inbound`'s promises: idempotent on Vonage's retries, long SMS assembled once all
their parts are in. `store_odd` keeps a request Vonage signed whose content we do not
understand: stored raw and put before a person, never refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

from campaigns.core.batch_insert import insert_rows
from campaigns.core.db import on_postgres, placeholders
from campaigns.models import InboundPart, Reply
from campaigns.replies.intake import (
    Received,
    assembled_values,
    decode_part_rows,
    existing,
    part_values,
    single_values,
)
from providers.base import InboundSms

if TYPE_CHECKING:
    from campaigns.core.runtime import Runtime

__all__ = ["ODD_RULE", "assemble_many", "store_many", "store_odd"]

log = logging.getLogger(__name__)

ODD_RULE = "odd_payload"
_SQLITE_MAX_VARIABLES = 999  # before SQLite 3.32
# Fields of a signed request that change when Vonage signs it again: left out of an odd
# request's identity, so its retries land once.
_SIGNING_FIELDS = ("sig", "nonce", "timestamp")


async def store_many(messages: Sequence[InboundSms], *, now: datetime) -> list[Received]:
    """Store a batch of inbound SMS and parts; one Received per message, in order."""
    singles = [i for i, sms in enumerate(messages) if sms.concat is None]
    parts = [i for i, sms in enumerate(messages) if sms.concat is not None]
    results: list[Received | None] = [None] * len(messages)
    reply_rows, part_rows = await asyncio.gather(
        insert_rows(Reply, [single_values(messages[i], now) for i in singles], now),
        insert_rows(InboundPart, [part_values(messages[i], now) for i in parts], now),
    )
    claimed: set[str] = set()
    retried: list[int] = []
    for i in singles:
        provider_id = messages[i].message_id
        # The same messageId twice in one batch: the first is the new one.
        if provider_id in reply_rows and provider_id not in claimed:
            claimed.add(provider_id)
            results[i] = Received(reply_rows[provider_id], duplicate=False)
        else:
            retried.append(i)
    if retried:
        known = await existing([messages[i].message_id for i in retried])
        for i in retried:
            results[i] = known.get(messages[i].message_id, Received(None, duplicate=True))
    if parts:
        # Counted after the parts committed, as receive_inbound does, so that two batches
        # storing the last two parts at once both see the whole set.
        groups = {_group(messages[i]): i for i in parts}
        reply_of = await assemble_many(list(groups), now=now)
        claimed.clear()
        for i in parts:
            provider_id = messages[i].message_id
            new = provider_id in part_rows and provider_id not in claimed
            claimed.add(provider_id)
            # Only one request per group carries the reply to queue.
            reply_id = reply_of[_group(messages[i])] if groups[_group(messages[i])] == i else None
            results[i] = Received(reply_id, duplicate=not new)
    return [r if r is not None else Received(None, duplicate=True) for r in results]


async def assemble_many(
    groups: list[tuple[str, str, int]], *, now: datetime
) -> dict[tuple[str, str, int], int | None]:
    """`assemble_parts` for many long SMS at once: one SELECT of their waiting parts, one
    INSERT of the replies now whole, one UPDATE of their parts (not three statements and
    two commits per SMS). For each group, the reply to process, or None."""
    conn = connections.get("default")
    found: dict[tuple[str, str, int], list[dict[str, Any]]] = {g: [] for g in groups}
    per_statement = _SQLITE_MAX_VARIABLES // 3
    for start in range(0, len(groups), per_statement):
        chunk = groups[start : start + per_statement]
        marks = placeholders(3 * len(chunk), conn)
        # PostgreSQL types untyped VALUES parameters as text: say the total is a number.
        cast = "::integer" if on_postgres(conn) else ""
        rows = ", ".join(
            f"({marks[i]}, {marks[i + 1]}, {marks[i + 2]}{cast})" for i in range(0, len(marks), 3)
        )
        sql = (
            'SELECT "id", "msisdn", "concat_ref", "total", "part", "provider_message_id", '
            '"text", "payload", "received_at" FROM "inbound_part" '
            f'WHERE ("msisdn", "concat_ref", "total") IN (VALUES {rows}) AND NOT "assembled" '
            'ORDER BY "part", "id"'
        )
        params = [value for group in chunk for value in group]
        for row in decode_part_rows(await conn.execute_query_dict(sql, params)):
            found[(row["msisdn"], row["concat_ref"], row["total"])].append(row)
    whole: dict[tuple[str, str, int], dict[str, Any]] = {}
    for group, waiting in found.items():
        values = assembled_values(group[0], group[2], waiting)
        if values is not None:
            whole[group] = values
    if not whole:
        return {group: None for group in groups}
    inserted = await insert_rows(Reply, list(whole.values()), now)
    already = [v["provider_message_id"] for v in whole.values()]
    retried = [pid for pid in already if pid not in inserted]
    # A round trip only when another batch assembled one first (rare).
    known = await existing(retried) if retried else {}
    await _mark_assembled(conn, [row["id"] for group in whole for row in found[group]])
    result: dict[tuple[str, str, int], int | None] = {group: None for group in groups}
    for group, values in whole.items():
        pid = values["provider_message_id"]
        result[group] = inserted[pid] if pid in inserted else known.get(pid, _NONE).reply_id
    return result


_NONE = Received(None, duplicate=True)


async def _mark_assembled(conn: BaseDBAsyncClient, part_ids: list[int]) -> None:
    # Plain SQL: building the ORM's UPDATE cost more CPU than the statement itself.
    for start in range(0, len(part_ids), _SQLITE_MAX_VARIABLES):
        chunk = part_ids[start : start + _SQLITE_MAX_VARIABLES]
        marks = ", ".join(placeholders(len(chunk), conn))
        await conn.execute_query(
            f'UPDATE "inbound_part" SET "assembled" = TRUE WHERE "id" IN ({marks})', chunk
        )


def _group(sms: InboundSms) -> tuple[str, str, int]:
    assert sms.concat is not None
    return sms.msisdn, str(sms.concat.ref), sms.concat.total


# --- odd requests --------------------------------------------------------------------------


def odd_identity(params: Mapping[str, str]) -> str:
    """The provider id an odd request is stored under: its messageId if usable, else a
    digest of its content (without the signing fields, which change on a re-signing)."""
    message_id = "".join(ch for ch in params.get("messageId", "") if ch.isprintable()).strip()
    if message_id and len(message_id) <= 64:
        return message_id
    content = {k: v for k, v in params.items() if k not in _SIGNING_FIELDS}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    return f"odd-{digest[:40]}"


def _clean(value: str, limit: int | None = None) -> str:
    value = value.replace("\x00", "")
    return value[:limit] if limit is not None else value


async def store_odd(
    params: Mapping[str, str], problem: dict[str, str | None], *, runtime: Runtime
) -> Received:
    """Store a request Vonage signed but we cannot read as a reply, raw, for a person.

    It becomes a reply with the label `other` and the rule `odd_payload`, its whole request
    and the problem kept in the payload, unread in the inbox, and in the triage queue.
    It is marked processed: the automatic rules (opt-out, archive) must not act on a text
    that may be a fragment. Idempotent: a retry finds the stored reply.
    """
    now = runtime.clock()
    raw = {_clean(k): _clean(v) for k, v in params.items()}
    provider_id = odd_identity(params)
    msisdn = "".join(ch for ch in params.get("msisdn", "") if ch.isdigit())[:20]
    explanation = {"rule": ODD_RULE, "problem": problem}
    inserted = await insert_rows(
        Reply,
        [
            {
                "provider_message_id": provider_id,
                "msisdn": f"+{msisdn}" if msisdn else "",
                "to": _clean(params.get("to", "").strip(), 20) or None,
                "text": _clean(params.get("text", "")),
                "received_at": now,
                "label": "other",
                "rule": ODD_RULE,
                "processed_at": now,
                "payload": {"raw": raw, "odd": problem},
                "explanation": explanation,
            }
        ],
        now,
    )
    reply = await Reply.get(provider_message_id=provider_id)
    # An escalation needs a number to be about; without one the reply waits, unread, in
    # the inbox, which lists every reply.
    if reply.escalation_id is None and reply.msisdn:
        await _to_triage(reply, runtime)
    return Received(None, duplicate=provider_id not in inserted)


async def _to_triage(reply: Reply, runtime: Runtime) -> None:
    from campaigns.escalations.lifecycle import escalate

    try:
        escalation = await escalate(reply=reply, queue="triage", label="other", runtime=runtime)
    except Exception:
        # Stored all the same: the reply stays unread in the inbox, where a person sees it.
        log.warning("odd reply %s could not reach the triage queue", reply.id, exc_info=True)
        return
    await Reply.filter(id=reply.id).update(escalation_id=escalation.id)

"""Opt-outs by address (STOP replies, unsubscribe links, staff) and their lifting on re-consent.

An opt-out belongs to an address, not to a person, so it survives re-imports, merges and
erasure. Creating one also skips every message still queued for that address, so a
running campaign sends nothing more to it; the dispatch re-checks at send time too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from campaigns.core import audit
from campaigns.core.audit import Actor
from campaigns.core.clock import Clock, utcnow
from campaigns.models import Message, MessageStatus, OptOut

__all__ = [
    "OptOutResult",
    "address_channel",
    "is_opted_out",
    "lift_opt_out",
    "normalise_address",
    "opt_out",
    "opted_out_among",
    "read_unsubscribe_token",
    "unsubscribe_token",
    "unsubscribe_url",
]

SKIP_REASON = "opted_out"
# Truncated HMAC-SHA256: 128 bits are plenty against forgery and keep the link short.
_TOKEN_MAC_BYTES = 16


@dataclass(frozen=True)
class OptOutResult:
    """What `opt_out` did: `created` is False when the address was already opted out."""

    opt_out: OptOut
    created: bool
    skipped_messages: int


def address_channel(address: str) -> str:
    return "email" if "@" in address else "sms"


def normalise_address(address: str) -> str:
    """E-mail addresses lower-cased, phone numbers in E.164 with their "+"."""
    address = address.strip()
    if "@" in address:
        return address.lower()
    if address and address[0].isdigit():
        return "+" + address
    return address


async def opt_out(
    address: str,
    channel: str | None = None,
    *,
    source: str,
    reply_id: int | None = None,
    actor: Actor,
) -> OptOutResult:
    """Make sure the address receives nothing more; idempotent (and safe when run concurrently).

    Only the call that turns the opt-out on gets `created=True` and writes `optout.create`:
    the caller uses it to send one confirmation, and `reply_id` records which reply did it.
    """
    address = normalise_address(address)
    channel = channel or address_channel(address)
    # A lifted opt-out comes back to life rather than making a second row (address is unique).
    revived = await OptOut.filter(address=address, active=False).update(
        active=True,
        channel=channel,
        source=source,
        reply_id=reply_id,
        lifted_at=None,
        lifted_by=None,
    )
    created = revived > 0
    if not created:
        try:
            # Its own transaction: on PostgreSQL a failed INSERT must not poison a caller's.
            async with in_transaction():
                await OptOut.create(
                    address=address, channel=channel, source=source, reply_id=reply_id
                )
            created = True
        except IntegrityError:
            created = False  # already active (or another process opted it out just now)
    row = await OptOut.get(address=address)
    skipped = await skip_queued_messages(address)
    if created:
        await audit.record(
            actor,
            "optout.create",
            "opt_out",
            row.id,
            channel=channel,
            source=source,
            reply_id=reply_id,
            skipped_messages=skipped,
        )
    return OptOutResult(row, created, skipped)


async def skip_queued_messages(address: str) -> int:
    """Mark every still-queued message to that address skipped, in one update."""
    return await Message.filter(address=address, status=MessageStatus.QUEUED).update(
        status=MessageStatus.SKIPPED, skip_reason=SKIP_REASON
    )


async def lift_opt_out(address: str, *, actor: Actor, reason: str, clock: Clock = utcnow) -> bool:
    """Lift an active opt-out (START, or a re-consent staff recorded); False if none was active."""
    address = normalise_address(address)
    row = await OptOut.get_or_none(address=address, active=True)
    if row is None:
        return False
    lifted = await OptOut.filter(id=row.id, active=True).update(
        active=False, lifted_at=clock(), lifted_by=actor.label[:254]
    )
    if lifted:
        await audit.record(actor, "optout.lift", "opt_out", row.id, reason=reason)
    return lifted > 0


async def is_opted_out(address: str) -> bool:
    return await OptOut.exists(address=normalise_address(address), active=True)


async def opted_out_among(addresses: list[str]) -> set[str]:
    """The opted-out addresses among many, in one query (for dispatch claims)."""
    if not addresses:
        return set()
    rows = await OptOut.filter(address__in=addresses, active=True).values_list("address", flat=True)
    return set(rows)  # type: ignore[arg-type]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret_key: str, address: str) -> bytes:
    digest = hmac.new(
        secret_key.encode("utf-8"), b"unsubscribe:" + address.encode("utf-8"), hashlib.sha256
    )
    return digest.digest()[:_TOKEN_MAC_BYTES]


def unsubscribe_token(secret_key: str, address: str) -> str:
    """A link token naming the address and signed with the service's secret key."""
    address = normalise_address(address)
    return f"{_b64(address.encode('utf-8'))}.{_b64(_mac(secret_key, address))}"


def unsubscribe_url(public_url: str, secret_key: str, address: str) -> str:
    """The link for an e-mail's footer and List-Unsubscribe header."""
    return f"{public_url.rstrip('/')}/desabonnement/{unsubscribe_token(secret_key, address)}"


def read_unsubscribe_token(secret_key: str, token: str) -> str | None:
    """The address a token names, or None when it is malformed or not ours."""
    encoded, _, mac = token.partition(".")
    if not encoded or not mac or len(token) > 1024:
        return None
    try:
        address = _unb64(encoded).decode("utf-8")
        given = _unb64(mac)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if normalise_address(address) != address:
        return None
    if not hmac.compare_digest(given, _mac(secret_key, address)):
        return None
    return address

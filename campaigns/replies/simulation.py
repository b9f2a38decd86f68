"""A reply typed by a coordinator in console mode, taken through the webhook's own path.

With the console provider no SMS leaves and none comes back: this is how a team tries a
whole campaign, reply included, before connecting Vonage. The reply is stored as an
inbound SMS would be, then matched, classified and routed by the same job function.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import phonenumbers

from campaigns.core.errors import Forbidden, Invalid
from campaigns.core.runtime import Runtime
from campaigns.models import Reply
from campaigns.replies.intake import receive_inbound
from campaigns.replies.routing import process_reply
from campaigns.rules.phones import parse_phone
from providers.base import InboundSms

__all__ = ["MAX_TEXT", "simulate_reply"]

MAX_TEXT = 1600  # ten SMS parts: what a phone would let someone send


def _msisdn(number: str, region: str) -> str:
    """E.164 of a number as a phone would send it; the demo's fiction numbers included.

    ARCEP's range for fiction is not "valid" for phonenumbers, yet it is what the demo
    population holds: a possible number is enough to simulate its reply.
    """
    phone = parse_phone(number, region)
    if phone is not None:
        return phone.e164
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_possible_number(parsed):
        raise Invalid(f"numéro invalide : « {number} »")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


async def simulate_reply(runtime: Runtime, number: str, text: str) -> Reply:
    """Store and process a reply from `number`; only with the console SMS provider."""
    if runtime.settings.sms_provider != "console":
        raise Forbidden(
            "la simulation de réponse n'existe qu'en mode console (CAMPAIGNS_SMS_PROVIDER=console)"
        )
    msisdn = _msisdn(number, runtime.settings.ccas_region)
    if not text.strip() or len(text) > MAX_TEXT or "\x00" in text:
        raise Invalid(f"texte vide ou trop long (au plus {MAX_TEXT} caractères)")
    now: datetime = runtime.clock()
    sms = InboundSms(
        message_id=f"simulation-{uuid.uuid4().hex}",
        msisdn=msisdn,
        to=runtime.settings.sms_sender,
        text=text,
        type="unicode",
        keyword=text.split()[0].upper() if text.split() else "",
        received_at=now,
        concat=None,
        raw={"simulation": "console"},
    )
    received = await receive_inbound(sms, now=now)
    assert received.reply_id is not None  # a single-part SMS is stored whole
    reply = await process_reply(runtime, received.reply_id)
    assert reply is not None
    return reply

"""Parse and validate the Vonage SMS API webhooks (inbound SMS, delivery receipts) into values.

Vonage sends the same flat keys as a GET query string, a POST form or a POST JSON
object; `merge_request_params` turns any of them into one `dict[str, str]`, which is
also what the signature is computed over (see `providers.vonage.signatures`). The values
produced are the provider-neutral types of `providers.base`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from providers.base import RECEIPT_STATUSES, ConcatInfo, DeliveryReceipt, InboundSms
from providers.vonage.errors import receipt_error_text

__all__ = [
    "MAX_CONCAT_TOTAL",
    "MAX_TEXT",
    "PayloadError",
    "decode_json_body",
    "is_empty_probe",
    "merge_request_params",
    "parse_inbound",
    "parse_receipt",
]

# Keys that carry no message content: a request holding only these is a URL check.
_ENVELOPE_KEYS = frozenset({"api-key", "timestamp", "nonce", "sig"})
_MSISDN = re.compile(r"\+?([0-9]{6,15})")
_SCTS = re.compile(r"([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})")
_DIGITS = re.compile(r"[0-9]{1,9}")
# Identifiers are stored in bounded columns (and PostgreSQL refuses NUL in text): anything
# longer, or holding a control character, is not something Vonage sends and gets a 400
# rather than a database error (500) that Vonage would retry for 24 hours.
MAX_ADDRESS = 20  # msisdn and to, as stored
MAX_MESSAGE_ID = 64
MAX_CONCAT_REF = 16
MAX_CONCAT_TOTAL = 255  # the SMS concatenation header counts parts in one byte
MAX_TEXT = 2000  # one part is at most 160 characters; leave room for odd gateways
MAX_PRICE = Decimal(100000)  # the price column holds 10 digits, 5 after the point
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class PayloadError(ValueError):
    """A webhook request that is not a well-formed Vonage payload (the web layer answers 400)."""

    def __init__(self, code: str, detail: str, field: str | None = None) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.field = field


def decode_json_body(raw: bytes | str) -> object:
    """Decode a JSON body keeping decimals as written (price "0.04500000" stays so when signed)."""
    try:
        return json.loads(raw, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError("bad_json", "corps JSON illisible") from exc


def _json_value_to_str(key: str, value: object) -> str | None:
    # Vonage sends strings; numbers are written as JSON wrote them, booleans in JSON spelling
    # ("true", as in a form or query). Python's str(True) would give "True", which is what
    # the SDK's check_signature would hash for a raw bool: we never hand it one.
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | Decimal):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    raise PayloadError("bad_param", f"valeur non scalaire pour « {key} »", key)


def merge_request_params(
    query: Mapping[str, str],
    form: Mapping[str, str] | None,
    json_body: object | None,
) -> dict[str, str]:
    """Merge query, form and JSON keys into one dict; the same key twice must agree."""
    sources: list[Mapping[str, object]] = [query]
    if form is not None:
        sources.append(form)
    if json_body is not None:
        if not isinstance(json_body, Mapping):
            raise PayloadError("bad_json", "le corps JSON doit être un objet")
        sources.append(json_body)
    merged: dict[str, str] = {}
    for source in sources:
        for key, value in source.items():
            if not isinstance(key, str):
                raise PayloadError("bad_param", "clé non textuelle")
            text = value if isinstance(value, str) else _json_value_to_str(key, value)
            if text is None:
                continue  # JSON null: the key is absent
            if key in merged and merged[key] != text:
                # Refuse rather than pick one: the signature covers a single value.
                raise PayloadError("conflicting_param", f"« {key} » reçu deux fois", key)
            merged[key] = text
    return merged


def is_empty_probe(params: Mapping[str, str]) -> bool:
    """True for Vonage's URL check: no key beyond the envelope carries a value."""
    return all(key in _ENVELOPE_KEYS or not str(value).strip() for key, value in params.items())


def _required(params: Mapping[str, str], key: str, *, allow_empty: bool = False) -> str:
    value = params.get(key)
    if value is None or (not allow_empty and not value.strip()):
        raise PayloadError("missing_field", f"champ « {key} » manquant", key)
    return value if allow_empty else value.strip()


def _optional(params: Mapping[str, str], key: str) -> str | None:
    value = params.get(key, "").strip()
    return value or None


def _bounded(value: str, key: str, limit: int) -> str:
    """An identifier as stored: at most ``limit`` characters, no control character."""
    if len(value) > limit:
        raise PayloadError("too_long", f"« {key} » dépasse {limit} caractères", key)
    if _CONTROL.search(value):
        raise PayloadError("bad_param", f"caractère de contrôle dans « {key} »", key)
    return value


def _text(value: str) -> str:
    # A NUL cannot be stored (PostgreSQL) and carries nothing a person wrote: dropped, so
    # that the reply is kept rather than refused and retried by Vonage for a day.
    text = value.replace("\x00", "")
    if len(text) > MAX_TEXT:
        raise PayloadError("too_long", f"« text » dépasse {MAX_TEXT} caractères", "text")
    return text


def _without_nul(params: Mapping[str, str]) -> dict[str, str]:
    """The request as kept in a JSON column: PostgreSQL's jsonb refuses \\u0000."""
    return {key.replace("\x00", ""): value.replace("\x00", "") for key, value in params.items()}


def _msisdn(value: str, key: str) -> str:
    match = _MSISDN.fullmatch(value.strip())
    if match is None:
        raise PayloadError("bad_number", f"numéro invalide dans « {key} »", key)
    return "+" + match.group(1)


def _vonage_timestamp(params: Mapping[str, str], key: str) -> datetime | None:
    value = _optional(params, key)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise PayloadError("bad_timestamp", f"date invalide dans « {key} »", key) from exc
    # Vonage writes UTC without an offset.
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _int_field(params: Mapping[str, str], key: str) -> int:
    value = _required(params, key)
    if not _DIGITS.fullmatch(value):
        raise PayloadError("bad_concat", f"« {key} » n'est pas un entier", key)
    return int(value)


def _concat(params: Mapping[str, str]) -> ConcatInfo | None:
    flagged = params.get("concat", "").strip().lower() == "true"
    has_parts = any(k in params for k in ("concat-ref", "concat-total", "concat-part"))
    if not flagged and not has_parts:
        return None
    info = ConcatInfo(
        ref=_int_field(params, "concat-ref"),
        total=_int_field(params, "concat-total"),
        part=_int_field(params, "concat-part"),
    )
    # concat-ref is at most 9 digits (_DIGITS), within MAX_CONCAT_REF. A missing part is
    # written out when an incomplete set is finalised: a huge total would build a huge text.
    if not 1 <= info.total <= MAX_CONCAT_TOTAL:
        raise PayloadError(
            "bad_concat", f"« concat-total » hors de 1 à {MAX_CONCAT_TOTAL}", "concat-total"
        )
    if not 1 <= info.part <= info.total:
        raise PayloadError("bad_concat", "numéro de partie incohérent", "concat-part")
    return info


def parse_inbound(params: Mapping[str, str]) -> InboundSms:
    """Validate an inbound SMS; text may be empty, and absent only for a binary message."""
    sms_type = (_optional(params, "type") or "text").lower()
    if sms_type == "binary":
        text = params.get("text", "")
    else:
        text = _required(params, "text", allow_empty=True)
    return InboundSms(
        message_id=_bounded(_required(params, "messageId"), "messageId", MAX_MESSAGE_ID),
        msisdn=_msisdn(_required(params, "msisdn"), "msisdn"),
        to=_bounded(params.get("to", "").strip(), "to", MAX_ADDRESS),
        text=_text(text),
        type=sms_type,
        keyword=params.get("keyword", "").strip(),
        received_at=_vonage_timestamp(params, "message-timestamp"),
        concat=_concat(params),
        raw=_without_nul(params),
    )


def _price(params: Mapping[str, str]) -> Decimal | None:
    value = _optional(params, "price")
    if value is None:
        return None
    try:
        price = Decimal(value)
    except InvalidOperation as exc:
        raise PayloadError("bad_price", "prix invalide", "price") from exc
    if not price.is_finite() or abs(price) >= MAX_PRICE:
        raise PayloadError("bad_price", "prix invalide", "price")
    return price


def _scts(params: Mapping[str, str]) -> datetime | None:
    # Informational only: an odd value is dropped rather than failing the receipt.
    value = _optional(params, "scts")
    if value is None or (found := _SCTS.fullmatch(value)) is None:
        return None
    # YYMMDDhhmm read by hand: strptime cost a tenth of a receipt's parsing.
    year, month, day, hour, minute = map(int, found.groups())
    try:
        return datetime(2000 + year, month, day, hour, minute, tzinfo=UTC)
    except ValueError:
        return None


def parse_receipt(params: Mapping[str, str]) -> DeliveryReceipt:
    """Validate a delivery receipt.

    A status outside Vonage's documented list becomes "unknown" (intermediate) rather
    than an error: a 400 would make Vonage retry for 24 h, and the original stays in raw.
    """
    status = _required(params, "status").lower()
    if status not in RECEIPT_STATUSES:
        status = "unknown"
    msisdn = _optional(params, "msisdn")
    err_code = _CONTROL.sub("", params.get("err-code", "")).strip()
    return DeliveryReceipt(
        message_id=_bounded(_required(params, "messageId"), "messageId", MAX_MESSAGE_ID),
        msisdn=None if msisdn is None else _msisdn(msisdn, "msisdn"),
        to=_bounded(params.get("to", "").strip(), "to", MAX_ADDRESS),
        status=status,
        err_code=err_code,
        error_text=receipt_error_text(err_code),
        price=_price(params),
        client_ref=_optional(params, "client-ref"),
        network_code=_optional(params, "network-code"),
        scts=_scts(params),
        message_timestamp=_vonage_timestamp(params, "message-timestamp"),
        raw=_without_nul(params),
    )

"""The small interface every channel provider implements, and the values it exchanges.

The domain may import this module and nothing else of `providers`: sending goes through
`SmsProvider`/`EmailProvider`, and what a provider's webhooks tell us arrives as
`InboundSms` and `DeliveryReceipt`, whatever wire format carried them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "FINAL_STATUSES",
    "INTERMEDIATE_STATUSES",
    "RECEIPT_STATUSES",
    "ConcatInfo",
    "DeliveryReceipt",
    "EmailProvider",
    "EmailRequest",
    "InboundSms",
    "Outcome",
    "SendResult",
    "SmsProvider",
    "SmsRequest",
    "estimate_sms_parts",
]


class Outcome(StrEnum):
    """What a provider can tell us about one send.

    UNCONFIRMED is only for a call that may have reached the provider; anything known not
    to have left (refused connection, throttle, an HTTP 4xx or 5xx answer, a call never
    started) is RETRY.
    """

    SUBMITTED = "submitted"  # the provider accepted it
    RETRY = "retry"  # transient, and nothing left: try again later
    FAILED = "failed"  # permanent: do not try again
    # We cannot know whether it left (connection lost after the request was written,
    # read timeout): never re-send blindly, a delivery receipt may settle it later.
    UNCONFIRMED = "unconfirmed"


@dataclass(frozen=True, slots=True)
class SmsRequest:
    message_id: str  # our id, sent as client_ref so receipts and duplicates can be matched
    to: str  # E.164 with the leading +
    sender: str
    text: str
    unicode: bool
    status_report: bool = True


@dataclass(frozen=True, slots=True)
class EmailRequest:
    message_id: str
    to: str
    sender: str
    subject: str
    text: str
    html: str | None = None
    headers: dict[str, str] = field(default_factory=dict)  # List-Unsubscribe and the like


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    provider_ids: tuple[str, ...] = ()
    parts: int = 1
    price: Decimal | None = None
    reason: str | None = None  # short code: "vonage:7 Number barred.", "smtp:550 ..."
    retry_after: float | None = None  # seconds, when the provider said so
    # The reason in French for the staff pages, written by the provider that knows its
    # codes; None when there is nothing to describe (or the provider could not say).
    description: str | None = None
    # RETRY only. Throttled: the provider asks us to slow down (not a failure of the
    # message: no attempt is spent). Unreachable: no connection could be made at all.
    throttled: bool = False
    unreachable: bool = False


FINAL_STATUSES = frozenset({"delivered", "expired", "failed", "rejected"})
INTERMEDIATE_STATUSES = frozenset({"accepted", "buffered", "unknown"})
RECEIPT_STATUSES = FINAL_STATUSES | INTERMEDIATE_STATUSES


@dataclass(frozen=True)
class ConcatInfo:
    """Where one part sits in a long (concatenated) inbound SMS."""

    ref: int
    total: int
    part: int


@dataclass(frozen=True)
class InboundSms:
    """One inbound SMS (or one part of a long one) as the provider delivered it."""

    message_id: str
    msisdn: str  # the sender, E.164 with "+"
    to: str  # our virtual number, as the provider wrote it
    text: str  # "" for a binary message without text
    type: str  # text, unicode or binary
    keyword: str
    received_at: datetime | None  # aware UTC, the provider's own time of reception
    concat: ConcatInfo | None
    raw: Mapping[str, str] = field(repr=False, compare=False)


@dataclass(frozen=True)
class DeliveryReceipt:
    """One delivery receipt (there is one per part of a long message)."""

    message_id: str
    msisdn: str | None  # the recipient, E.164 with "+"
    to: str  # the sender we used
    status: str  # one of RECEIPT_STATUSES
    err_code: str
    # The err-code in French, as the provider's parser describes it: the domain stores it
    # without knowing any provider's table of codes.
    error_text: str
    price: Decimal | None
    client_ref: str | None
    network_code: str | None
    scts: datetime | None  # the operator's timestamp, aware UTC
    message_timestamp: datetime | None  # aware UTC
    raw: Mapping[str, str] = field(repr=False, compare=False)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def is_intermediate(self) -> bool:
        return self.status in INTERMEDIATE_STATUSES


@runtime_checkable
class SmsProvider(Protocol):
    name: str

    async def send_sms(self, req: SmsRequest) -> SendResult: ...

    async def close(self) -> None: ...


@runtime_checkable
class KeepsOutbox(Protocol):
    """A provider that keeps what it "sends" (the console one), for the staff pages."""

    def read_outbox(self, limit: int) -> list[dict[str, Any]]: ...


@runtime_checkable
class EmailProvider(Protocol):
    name: str

    async def send_email(self, req: EmailRequest) -> SendResult: ...

    async def close(self) -> None: ...


# GSM 03.38 characters that take two septets (escape + character).
_GSM_EXTENDED = frozenset("^{}\\[~]|€\f")


def estimate_sms_parts(text: str, unicode: bool) -> int:
    """Count SMS parts the way Vonage bills them (160/153 GSM-7, 70/67 UCS-2).

    An estimate for the console provider and the emulator, which must not depend on the
    domain: the domain's own encoder is the reference for what a campaign costs.
    """
    if unicode:
        length = len(text.encode("utf-16-le")) // 2  # UTF-16 code units: emoji count twice
        single, multi = 70, 67
    else:
        length = sum(2 if ch in _GSM_EXTENDED else 1 for ch in text)
        single, multi = 160, 153
    if length <= single:
        return 1
    return math.ceil(length / multi)

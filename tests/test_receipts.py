"""Delivery receipts: the three request forms, parts, idempotency, signatures, unknown ids.

The webhook stores a receipt; a job applies the pending ones in bulk. `post` sends a
receipt to the webhook then runs that job's work, as the queue would a moment later.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from campaigns.core.runtime import Runtime
from campaigns.dispatch import receipt_store, receipts
from campaigns.models import DeliveryReceipt, Message, MessagePart, MessageStatus
from providers.vonage.payloads import parse_receipt
from providers.vonage.signatures import sign_params
from tests.dispatch_support import make_run

M = MessageStatus
URL = "/webhooks/vonage/status"


def receipt(provider_id: str, status: str = "delivered", **extra: str) -> dict[str, str]:
    return {
        "msisdn": "33610000000",
        "to": "CCAS",
        "network-code": "20801",
        "messageId": provider_id,
        "price": "0.04870000",
        "status": status,
        "scts": "2603161205",
        "err-code": "0" if status in ("delivered", "accepted", "buffered") else "9",
        "message-timestamp": "2026-03-16 12:05:00",
        "api-key": "k",
        **extra,
    }


async def post(client: TestClient, params: dict[str, str], how: str = "json") -> Any:
    if how == "get":
        response = await client.get(URL, params=params)
    elif how == "form":
        response = await client.post(URL, data=params)
    else:
        response = await client.post(URL, json=params)
    await receipts.apply_pending_receipts(datetime.now(UTC))
    return response.status, await response.json()


async def submitted(parts: int = 1, status: MessageStatus = M.SUBMITTED) -> Message:
    """A message the provider accepted, with its parts' ids P<id>-<n>."""
    _, run = await make_run(1, segments=parts)
    message = await Message.get(run_id=run.id)
    await Message.filter(id=message.id).update(status=status)
    if status == M.SUBMITTED:
        await MessagePart.bulk_create(
            [
                MessagePart(message_id=message.id, provider_message_id=f"P{message.id}-{n}")
                for n in range(parts)
            ]
        )
    return message


@pytest.mark.parametrize("how", ["get", "form", "json"])
async def test_a_receipt_in_any_form_delivers_the_message(
    client: TestClient, db: str, how: str
) -> None:
    message = await submitted()
    status, body = await post(client, receipt(f"P{message.id}-0"), how)
    assert (status, body) == (200, {"status": "stored"})
    await message.refresh_from_db()
    assert message.status == M.DELIVERED and message.settled_at is not None
    part = await MessagePart.get(provider_message_id=f"P{message.id}-0")
    assert (part.status, part.err_code, part.price) == ("delivered", "0", Decimal("0.0487"))


async def test_a_long_message_is_delivered_when_every_part_is(client: TestClient, db: str) -> None:
    message = await submitted(parts=2)
    await post(client, receipt(f"P{message.id}-1", "accepted"))
    await message.refresh_from_db()
    assert message.status == M.SUBMITTED
    await post(client, receipt(f"P{message.id}-1"))
    await message.refresh_from_db()
    assert message.status == M.SUBMITTED  # one part of two
    await post(client, receipt(f"P{message.id}-0"))
    await message.refresh_from_db()
    assert message.status == M.DELIVERED
    # A late intermediate receipt never undoes a final one; a repeat changes nothing.
    await post(client, receipt(f"P{message.id}-0", "buffered"))
    await post(client, receipt(f"P{message.id}-0"))
    await message.refresh_from_db()
    assert message.status == M.DELIVERED
    statuses = await MessagePart.filter(message_id=message.id).values_list("status", flat=True)
    assert sorted(statuses) == ["delivered", "delivered"]


@pytest.mark.parametrize(
    ("status", "err_code", "expected", "error"),
    [
        ("failed", "9", M.FAILED, "Numéro invalide (err-code 9)"),
        ("rejected", "6", M.REJECTED, "Rejeté par le filtre anti-spam (err-code 6)"),
        ("expired", "1", M.EXPIRED, "Erreur inconnue (err-code 1)"),
        ("failed", "77", M.FAILED, "Erreur inconnue (code 77) (err-code 77)"),
    ],
)
async def test_a_failed_part_fails_the_message_with_the_reason_in_french(
    client: TestClient, db: str, status: str, err_code: str, expected: MessageStatus, error: str
) -> None:
    message = await submitted(parts=2)
    await post(client, receipt(f"P{message.id}-0"))
    await post(client, receipt(f"P{message.id}-1", status, **{"err-code": err_code}))
    await message.refresh_from_db()
    assert (message.status, message.error) == (expected, error)


@pytest.mark.parametrize(
    ("parts", "error"),
    [
        ([("delivered", "0"), ("failed", "9")], "Numéro invalide (err-code 9)"),
        ([("failed", "7"), ("failed", "9")], "Échec signalé par l'opérateur (err-code 7)"),
    ],
)
def test_the_error_text_is_the_receipts_own_description_of_its_code(
    parts: list[tuple[str, str]], error: str
) -> None:
    """The domain keeps no table of codes: a part the receipt at hand does not describe
    (another code) is named by its code alone."""
    applied = parse_receipt(receipt("P1-1", "failed", **{"err-code": "9"}))
    assert receipts.derive_status(M.SUBMITTED, 2, parts, applied) == (M.FAILED, error)


async def test_an_unconfirmed_message_is_settled_by_client_ref(client: TestClient, db: str) -> None:
    """No part known (the worker died mid-send): matched by client-ref, then delivered."""
    message = await submitted(status=M.UNCONFIRMED)
    status, body = await post(client, receipt("VONAGE-ID-1", **{"client-ref": str(message.id)}))
    assert (status, body) == (200, {"status": "stored"})
    await message.refresh_from_db()
    assert message.status == M.DELIVERED
    assert message.sent_at == datetime(2026, 3, 16, 12, 5, tzinfo=UTC)
    assert message.price == Decimal("0.0487")
    assert await MessagePart.filter(message_id=message.id).count() == 1


async def test_an_intermediate_receipt_proves_an_unconfirmed_message_left(
    client: TestClient, db: str
) -> None:
    message = await submitted(status=M.UNCONFIRMED)
    await post(client, receipt("VONAGE-ID-2", "accepted", **{"client-ref": str(message.id)}))
    await message.refresh_from_db()
    assert message.status == M.SUBMITTED


async def test_unknown_ids_are_acknowledged(client: TestClient, db: str) -> None:
    status, body = await post(client, receipt("NOBODY", **{"client-ref": "999999"}))
    assert (status, body) == (200, {"status": "stored"})
    stored = await DeliveryReceipt.get(provider_message_id="NOBODY")
    assert (stored.outcome, stored.applied_at is not None) == ("unknown", True)


async def test_a_repeat_of_a_stored_receipt_is_a_duplicate(client: TestClient, db: str) -> None:
    """Vonage's retry after a lost answer: stored once, answered 2xx again."""
    message = await submitted()
    assert await post(client, receipt(f"P{message.id}-0")) == (200, {"status": "stored"})
    assert await post(client, receipt(f"P{message.id}-0")) == (200, {"status": "duplicate"})
    assert await DeliveryReceipt.filter(provider_message_id=f"P{message.id}-0").count() == 1


async def test_a_refused_message_is_not_revived_by_a_receipt(client: TestClient, db: str) -> None:
    """Partial refusal: dispatch said failed; a receipt for the accepted part keeps it so."""
    message = await submitted()
    await Message.filter(id=message.id).update(status=M.FAILED, error="envoi partiel")
    await post(client, receipt(f"P{message.id}-0"))
    await message.refresh_from_db()
    assert message.status == M.FAILED


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"status": "delivered", "msisdn": "33610000000"}, "missing_field"),
        ({"messageId": "X", "status": "delivered", "msisdn": "abc"}, "bad_number"),
    ],
)
async def test_malformed_receipts_are_refused_with_a_reason(
    client: TestClient, db: str, params: dict[str, str], code: str
) -> None:
    status, body = await post(client, params)
    assert status == 400
    assert body["error"] == code and body["detail"]


async def test_an_empty_probe_is_answered(client: TestClient, db: str) -> None:
    response = await client.get(URL)
    assert response.status == 200
    response = await client.post(URL, data={"api-key": "k"})
    assert response.status == 200


async def test_broken_json_is_a_400(client: TestClient, db: str) -> None:
    response = await client.post(
        URL, data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert (await response.json())["error"] == "bad_json"


@pytest.mark.parametrize("method", ["md5hash", "sha256"])
async def test_signatures_are_checked_when_a_secret_is_set(
    client: TestClient, runtime: Runtime, db: str, method: str
) -> None:
    runtime.settings.vonage_signature_secret = "secret-de-signature"
    runtime.settings.vonage_signature_method = method  # type: ignore[assignment]
    message = await submitted()
    params = receipt(f"P{message.id}-0")

    status, body = await post(client, params)
    assert status == 401 and body["error"] == "missing_signature" and body["detail"]

    now = runtime.clock()
    signed = sign_params(
        params, "secret-de-signature", method, timestamp=int(now.timestamp()), nonce="n-1"
    )
    forged = {**signed, "status": "failed"}
    status, body = await post(client, forged, "form")
    assert (status, body["error"]) == (401, "bad_signature")

    status, body = await post(client, signed, "form")
    assert (status, body) == (200, {"status": "stored"})
    # The identical request again (Vonage's retry): not a replay, a duplicate.
    status, body = await post(client, signed, "form")
    assert (status, body) == (200, {"status": "duplicate"})
    await message.refresh_from_db()
    assert message.status == M.DELIVERED


async def test_oversized_or_control_fields_get_a_400_not_a_500(client: TestClient, db: str) -> None:
    """On both engines: ids longer than their columns, control characters and prices the
    price column cannot hold are refused with a reason; a NUL in err-code is dropped."""
    message = await submitted()
    cases = [
        (receipt("A" * 65), "too_long"),
        (receipt("A\x00B"), "bad_param"),
        (receipt(f"P{message.id}-0", to="C" * 21), "too_long"),
        (receipt(f"P{message.id}-0", price="1e20"), "bad_price"),
    ]
    for params, code in cases:
        status, body = await post(client, params)
        assert (status, body["error"]) == (400, code)
    await message.refresh_from_db()
    assert message.status == M.SUBMITTED
    status, body = await post(
        client, receipt(f"P{message.id}-0", "failed", **{"err-code": "9\x00"})
    )
    assert (status, body) == (200, {"status": "stored"})
    part = await MessagePart.get(provider_message_id=f"P{message.id}-0")
    assert (part.status, part.err_code) == ("failed", "9")


async def test_a_receipt_that_could_not_be_stored_is_retried_by_vonage(
    client: TestClient, runtime: Runtime, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database away: a 503 with Retry-After, not a 500; Vonage sends the same signed
    request again, and that retry is stored (its nonce was not spent)."""
    runtime.settings.vonage_signature_secret = "secret-de-signature"
    runtime.settings.vonage_signature_method = "sha256"  # type: ignore[assignment]
    message = await submitted()
    now = runtime.clock()
    signed = sign_params(
        receipt(f"P{message.id}-0"),
        "secret-de-signature",
        "sha256",
        timestamp=int(now.timestamp()),
        nonce="n-retry",
    )
    real_store = receipt_store.store_receipts
    calls = 0

    async def database_down_once(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionRefusedError(111, "Connect call failed")
        return await real_store(*args, **kwargs)

    monkeypatch.setattr(receipt_store, "store_receipts", database_down_once)
    response = await client.post(URL, data=signed)
    assert response.status == 503
    assert int(response.headers["Retry-After"]) > 0
    status, body = await post(client, signed, "form")
    assert (status, body) == (200, {"status": "stored"})
    await message.refresh_from_db()
    assert message.status == M.DELIVERED

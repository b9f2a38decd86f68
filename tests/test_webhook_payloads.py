"""Vonage webhook payloads: merging the three request shapes, and parsing inbound SMS and DLRs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from providers.base import FINAL_STATUSES, INTERMEDIATE_STATUSES, ConcatInfo
from providers.vonage.errors import RECEIPT_ERRORS, receipt_error_text
from providers.vonage.payloads import (
    PayloadError,
    decode_json_body,
    is_empty_probe,
    merge_request_params,
    parse_inbound,
    parse_receipt,
)

EXAMPLES_FILE = Path(__file__).resolve().parent / "data" / "vonage_webhooks.json"
EXAMPLES = json.loads(EXAMPLES_FILE.read_text(encoding="utf-8"))
INBOUND_TEXT = EXAMPLES["inbound"]["text"]
RECEIPT = EXAMPLES["receipts"][0]


def _without(params: dict[str, str], key: str) -> dict[str, str]:
    return {k: v for k, v in params.items() if k != key}


# --- merge_request_params --------------------------------------------------------------


def test_query_form_and_json_give_the_same_params() -> None:
    """The three ways Vonage can deliver one webhook merge into the same dict."""
    from_query = merge_request_params(INBOUND_TEXT, None, None)
    from_form = merge_request_params({}, INBOUND_TEXT, None)
    from_json = merge_request_params({}, None, decode_json_body(json.dumps(INBOUND_TEXT)))
    assert from_query == from_form == from_json == INBOUND_TEXT


@pytest.mark.parametrize(
    ("raw_json", "expected"),
    [
        ('{"price": 0.04500000}', {"price": "0.04500000"}),
        ('{"concat-part": 2}', {"concat-part": "2"}),
        ('{"concat": true}', {"concat": "true"}),
        ('{"concat": false}', {"concat": "false"}),
        ('{"client-ref": null, "to": "33644630000"}', {"to": "33644630000"}),
    ],
)
def test_json_scalars_become_the_text_vonage_signs(raw_json: str, expected: dict) -> None:
    """Numbers keep their written form, booleans their JSON spelling, null means absent."""
    assert merge_request_params({}, None, decode_json_body(raw_json)) == expected


def test_floats_from_a_plain_json_parser_are_written_shortest() -> None:
    """A body decoded by request.json() (floats) still gives the natural decimal text."""
    assert merge_request_params({}, None, {"price": 0.045}) == {"price": "0.045"}


@pytest.mark.parametrize(
    ("query", "form", "body", "code"),
    [
        ({}, None, ["not", "an", "object"], "bad_json"),
        ({}, None, "text", "bad_json"),
        ({}, None, {"text": {"nested": 1}}, "bad_param"),
        ({}, None, {"text": [1, 2]}, "bad_param"),
        ({"to": "1"}, {"to": "2"}, None, "conflicting_param"),
        ({"to": "1"}, None, {"to": "2"}, "conflicting_param"),
    ],
)
def test_unusable_bodies_are_refused(query, form, body, code: str) -> None:
    """A non-object JSON body, nested values or contradicting sources are payload errors."""
    with pytest.raises(PayloadError) as caught:
        merge_request_params(query, form, body)
    assert caught.value.code == code
    assert caught.value.detail


def test_same_value_in_two_sources_is_accepted() -> None:
    """A key repeated with the same value in query and body is not a conflict."""
    assert merge_request_params({"to": "1"}, {"to": "1", "a": "b"}, None) == {"to": "1", "a": "b"}


@pytest.mark.parametrize("raw", [b"{", b"\xff\xfe", "[1,"])
def test_undecodable_json_is_a_payload_error(raw) -> None:
    """Broken JSON is a 400, not a 500."""
    with pytest.raises(PayloadError) as caught:
        decode_json_body(raw)
    assert caught.value.code == "bad_json"


# --- is_empty_probe --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "probe"),
    [
        ({}, True),
        ({"api-key": "abcd1234"}, True),
        ({"timestamp": "1795425302", "nonce": "n", "sig": "ab"}, True),
        ({"msisdn": "", "text": " "}, True),
        ({"msisdn": "33612345678"}, False),
        (INBOUND_TEXT, False),
        (RECEIPT, False),
    ],
)
def test_empty_probe(params: dict[str, str], probe: bool) -> None:
    """Only a request with no content beyond the envelope is Vonage's URL check."""
    assert is_empty_probe(params) is probe


# --- parse_inbound ---------------------------------------------------------------------


def test_inbound_text_example() -> None:
    """The plain text example parses field by field, sender in E.164."""
    sms = parse_inbound(INBOUND_TEXT)
    assert sms.message_id == "1000000001A2B3C4"
    assert sms.msisdn == "+33612345678"
    assert sms.to == "33644630000"
    assert sms.text == "Oui rappelez-moi svp"
    assert sms.type == "text"
    assert sms.keyword == "OUI"
    assert sms.received_at == datetime(2026, 11, 20, 9, 15, 2, tzinfo=UTC)
    assert sms.concat is None
    assert sms.raw == INBOUND_TEXT


def test_inbound_unicode_example_keeps_the_text() -> None:
    """Unicode text (emoji, accents) comes through unchanged."""
    sms = parse_inbound(EXAMPLES["inbound"]["unicode"])
    assert sms.type == "unicode"
    assert sms.text == "Merci 😊 à demain"


def test_long_message_parts_carry_their_position() -> None:
    """Each part of the long example says which part of which total it is."""
    parts = [parse_inbound(p) for p in EXAMPLES["inbound"]["concat_parts"]]
    assert [p.concat for p in parts] == [ConcatInfo(108, 2, 1), ConcatInfo(108, 2, 2)]
    assert "".join(p.text for p in parts).startswith("Bonjour, je vous reponds")


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"msisdn": None}, "missing_field", "msisdn"),
        ({"msisdn": ""}, "missing_field", "msisdn"),
        ({"messageId": None}, "missing_field", "messageId"),
        ({"text": None}, "missing_field", "text"),
        ({"msisdn": "CCAS"}, "bad_number", "msisdn"),
        ({"msisdn": "3361234567812345678"}, "bad_number", "msisdn"),
        ({"message-timestamp": "20/11/2026"}, "bad_timestamp", "message-timestamp"),
        ({"concat": "true"}, "missing_field", "concat-ref"),
        (
            {"concat": "true", "concat-ref": "1", "concat-total": "2", "concat-part": "3"},
            "bad_concat",
            "concat-part",
        ),
        (
            {"concat": "true", "concat-ref": "1", "concat-total": "0", "concat-part": "0"},
            "bad_concat",
            "concat-total",
        ),
        (
            {"concat": "true", "concat-ref": "1", "concat-total": "256", "concat-part": "1"},
            "bad_concat",
            "concat-total",
        ),
        (
            {"concat": "true", "concat-ref": "1", "concat-total": "255", "concat-part": "256"},
            "bad_concat",
            "concat-part",
        ),
        ({"messageId": "A" * 65}, "too_long", "messageId"),
        ({"messageId": "AB\x00CD"}, "bad_param", "messageId"),
        ({"to": "3" * 21}, "too_long", "to"),
        ({"to": "336\x0044630000"}, "bad_param", "to"),
        ({"text": "x" * 2001}, "too_long", "text"),
        (
            {"concat": "true", "concat-ref": "1", "concat-total": "2", "concat-part": "0"},
            "bad_concat",
            "concat-part",
        ),
        (
            {"concat": "true", "concat-ref": "x", "concat-total": "2", "concat-part": "1"},
            "bad_concat",
            "concat-ref",
        ),
        (
            {"concat": "true", "concat-ref": "1", "concat-total": "²", "concat-part": "1"},
            "bad_concat",
            "concat-total",
        ),
        (
            {"concat-ref": "1", "concat-total": "-2", "concat-part": "1"},
            "bad_concat",
            "concat-total",
        ),
    ],
)
def test_invalid_inbound_is_refused(changes: dict, code: str, field: str) -> None:
    """Missing identity or text, bad numbers, dates or part numbers are payload errors."""
    params = dict(INBOUND_TEXT)
    for key, value in changes.items():
        if value is None:
            params.pop(key)
        else:
            params[key] = value
    with pytest.raises(PayloadError) as caught:
        parse_inbound(params)
    assert (caught.value.code, caught.value.field) == (code, field)


@pytest.mark.parametrize(
    ("changes", "check"),
    [
        ({"text": ""}, lambda sms: sms.text == ""),
        ({"msisdn": "+33612345678"}, lambda sms: sms.msisdn == "+33612345678"),
        ({"message-timestamp": None}, lambda sms: sms.received_at is None),
        ({"keyword": None}, lambda sms: sms.keyword == ""),
        ({"concat": "false"}, lambda sms: sms.concat is None),
        (
            {"type": "binary", "text": None, "data": "0102", "udh": "050003"},
            lambda sms: sms.type == "binary" and sms.text == "" and sms.raw["data"] == "0102",
        ),
        ({"type": "TEXT"}, lambda sms: sms.type == "text"),
    ],
)
def test_tolerated_inbound_variants(changes: dict, check) -> None:
    """Empty text, a "+" sender, no timestamp or keyword, and textless binary are accepted."""
    params = dict(INBOUND_TEXT)
    for key, value in changes.items():
        if value is None:
            params.pop(key)
        else:
            params[key] = value
    assert check(parse_inbound(params))


# --- parse_receipt ---------------------------------------------------------------------


def test_delivered_receipt_example() -> None:
    """The delivered example parses field by field."""
    receipt = parse_receipt(RECEIPT)
    assert receipt.message_id == "0A0000001234ABCD"
    assert receipt.msisdn == "+33612345678"
    assert receipt.to == "CCASAMIENS"
    assert receipt.status == "delivered"
    assert receipt.err_code == "0"
    assert receipt.price == Decimal("0.045")
    assert receipt.client_ref == "msg-42"
    assert receipt.network_code == "20801"
    assert receipt.scts == datetime(2026, 11, 20, 9, 15, tzinfo=UTC)
    assert receipt.message_timestamp == datetime(2026, 11, 20, 9, 15, 4, tzinfo=UTC)
    assert receipt.is_final and not receipt.is_intermediate
    assert receipt.error_text == "Remis"


@pytest.mark.parametrize(
    ("status", "final", "err_text"),
    [
        ("delivered", True, "Remis"),
        ("accepted", False, "Remis"),
        ("buffered", False, "Remis"),
        ("failed", True, "Abonné absent (permanent)"),
        ("rejected", True, "Rejeté par le filtre anti-spam"),
        ("expired", True, "Erreur inconnue"),
    ],
)
def test_every_receipt_example(status: str, final: bool, err_text: str) -> None:
    """Each example receipt is final or intermediate as Vonage defines it."""
    (example,) = [r for r in EXAMPLES["receipts"] if r["status"] == status]
    receipt = parse_receipt(example)
    assert receipt.status == status
    assert receipt.is_final is final
    assert receipt.is_intermediate is not final
    assert receipt.error_text == err_text


@pytest.mark.parametrize(
    ("raw_status", "status"),
    [
        ("DELIVERED", "delivered"),
        (" Failed ", "failed"),
        ("unknown", "unknown"),
        ("deleted", "unknown"),
    ],
)
def test_status_is_normalised_and_unlisted_ones_become_unknown(raw_status, status) -> None:
    """Status is lower-cased; an undocumented one is kept as intermediate "unknown"."""
    receipt = parse_receipt({**RECEIPT, "status": raw_status})
    assert receipt.status == status
    assert receipt.raw["status"] == raw_status


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"messageId": None}, "missing_field"),
        ({"status": None}, "missing_field"),
        ({"status": " "}, "missing_field"),
        ({"price": "abc"}, "bad_price"),
        ({"price": "NaN"}, "bad_price"),
        ({"msisdn": "not-a-number"}, "bad_number"),
        ({"message-timestamp": "hier"}, "bad_timestamp"),
        # Beyond what the database columns hold: a 400, not a 500 retried for a day.
        ({"price": "123456.5"}, "bad_price"),
        ({"messageId": "A" * 65}, "too_long"),
        ({"messageId": "A\x00"}, "bad_param"),
        ({"to": "C" * 21}, "too_long"),
    ],
)
def test_invalid_receipt_is_refused(changes: dict, code: str) -> None:
    """A receipt without id or status, or with a garbled price, is a payload error."""
    params = dict(RECEIPT)
    for key, value in changes.items():
        if value is None:
            params.pop(key)
        else:
            params[key] = value
    with pytest.raises(PayloadError) as caught:
        parse_receipt(params)
    assert caught.value.code == code


def test_nul_characters_never_reach_what_is_stored() -> None:
    """PostgreSQL refuses NUL in text and jsonb: dropped from the text and the kept payload."""
    sms = parse_inbound({**INBOUND_TEXT, "text": "oui\x00 merci", "x\x00": "a\x00b"})
    assert sms.text == "oui merci"
    assert all("\x00" not in key + value for key, value in sms.raw.items())
    assert sms.raw["x"] == "ab"
    receipt = parse_receipt({**RECEIPT, "err-code": "0\x00", "network-code": "2\x00"})
    assert receipt.err_code == "0"
    assert all("\x00" not in key + value for key, value in receipt.raw.items())


def test_minimal_receipt_leaves_optional_fields_empty() -> None:
    """Only messageId and status are required; the rest may be absent or odd."""
    receipt = parse_receipt({"messageId": "X1", "status": "failed", "scts": "99999999"})
    assert receipt.msisdn is None
    assert receipt.price is None
    assert receipt.client_ref is None
    assert receipt.network_code is None
    assert receipt.scts is None
    assert receipt.message_timestamp is None
    assert receipt.err_code == ""


def test_receipt_error_texts_cover_the_common_codes() -> None:
    """All common DLR codes have a French text; others name their code."""
    expected = {str(code) for code in range(16)} | {"99"}
    assert set(RECEIPT_ERRORS) == expected
    assert all(text and text[0].isupper() for text in RECEIPT_ERRORS.values())
    assert receipt_error_text("42") == "Erreur inconnue (code 42)"
    assert receipt_error_text("") == "Code d'erreur absent"
    assert FINAL_STATUSES.isdisjoint(INTERMEDIATE_STATUSES)

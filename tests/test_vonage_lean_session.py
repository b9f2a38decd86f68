"""The lean session prepares the SDK's SMS form exactly as requests would, and leaves
every other request to requests."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from providers.vonage.lean_session import LeanSession

URL = "https://rest.nexmo.com/sms/json"
HEADERS = {"User-Agent": "vonage-python-sdk/4.0 python/3.11", "Accept": "application/json"}
FORM = {
    "from": "CCAS",
    "to": "33612345678",
    "text": "Bonjour Mme Lefèvre, le CCAS vous appelle : 04 72 00 00 00 & merci 😊",
    "type": "unicode",
    "client-ref": "42",
    "status-report-req": True,
    "ttl": 86400000,
    "callback": None,
    "api_key": "key",
    "api_secret": "s3cr=t+/",
}


def _as_requests_would(request: requests.Request) -> requests.PreparedRequest:
    plain = requests.Session()
    plain.trust_env = False
    return plain.prepare_request(request)


def _lean() -> LeanSession:
    session = LeanSession()
    session.trust_env = False
    return session


def _wire(prepared: requests.PreparedRequest) -> tuple[Any, ...]:
    return prepared.method, prepared.url, list(prepared.headers.items()), prepared.body


@pytest.mark.parametrize(
    "form",
    [FORM, {"to": "33612345678", "text": "Réponse : STOP"}, {"text": "a b", "n": 1.5}],
)
def test_a_form_post_is_the_same_request_byte_for_byte(form: dict[str, Any]) -> None:
    def request() -> requests.Request:
        return requests.Request("POST", URL, data=dict(form), headers=dict(HEADERS))

    expected = _as_requests_would(request())
    session = _lean()
    for _ in range(2):  # the second time with the URL already parsed
        assert _wire(session.prepare_request(request())) == _wire(expected)
    assert "callback" not in str(expected.body)  # None values are left out, as requests does


def test_a_header_set_to_none_removes_the_session_header() -> None:
    headers = {**HEADERS, "Accept-Encoding": None}
    request = requests.Request("POST", URL, data=dict(FORM), headers=headers)
    prepared = _lean().prepare_request(request)
    assert "Accept-Encoding" not in prepared.headers
    assert _wire(prepared) == _wire(_as_requests_would(request))


@pytest.mark.parametrize(
    "changes",
    [
        {"json": {"to": "33612345678"}, "data": None},
        {"params": {"page": "2"}},
        {"cookies": {"session": "abc"}},
        {"auth": ("user", "password")},
        {"data": {"to": ["33612345678", "33687654321"]}},
    ],
)
def test_other_requests_go_the_usual_way(changes: dict[str, Any]) -> None:
    fields: dict[str, Any] = {"data": dict(FORM), "headers": dict(HEADERS), **changes}
    request = requests.Request("POST", URL, **fields)
    assert _wire(_lean().prepare_request(request)) == _wire(_as_requests_would(request))


def test_a_session_that_reads_the_environment_goes_the_usual_way(monkeypatch) -> None:
    session = LeanSession()  # trust_env on: a netrc file could add credentials
    called: list[bool] = []
    original = requests.Session.prepare_request

    def spy(self: requests.Session, request: requests.Request) -> requests.PreparedRequest:
        called.append(True)
        return original(self, request)

    monkeypatch.setattr(requests.Session, "prepare_request", spy)
    session.prepare_request(requests.Request("POST", URL, data=dict(FORM), headers=HEADERS))
    assert called == [True]

"""A `requests.Session` that prepares the SDK's form posts without its general machinery.

For every SMS, `Session.prepare_request` merges cookie jars, hooks, auth and settings,
parses the URL again and encodes the form through runtime `Protocol` checks: about 0.35 ms
of CPU per send on the 2-core machine, an eighth of a worker's CPU per message. A send
to Vonage is always the same shape (a POST of a flat form of text and numbers to one
URL, no cookies, no files, no auth object: the key is in the form), so that shape is
prepared here with `PreparedRequest`'s own steps, the URL parsed once. Anything else
(a cookie, a file, JSON, query parameters, an auth object) goes the usual way.

The result is the same request byte for byte: same headers in the same order, same body
(`tests/test_vonage_lean_session.py` compares both).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import requests
from requests.cookies import RequestsCookieJar
from requests.structures import CaseInsensitiveDict

__all__ = ["LeanSession"]

_FORM = "application/x-www-form-urlencoded"
_SCALARS = (str, int, float, bool)
_MAX_URLS = 16  # one URL in practice (/sms/json); bounded all the same


class LeanSession(requests.Session):
    """Prepares a flat form POST directly; any other request the usual way."""

    def __init__(self) -> None:
        super().__init__()
        self._urls: dict[str, str] = {}

    def _plain_form(self, request: requests.Request) -> dict[str, Any] | None:
        """The request's form when it is the plain shape prepared here, else None."""
        data = request.data
        plain = (
            isinstance(data, dict)
            and bool(data)
            and all(isinstance(k, str) for k in data)
            and all(v is None or isinstance(v, _SCALARS) for v in data.values())
            and not request.files
            and request.json is None
            and not request.params
            and request.auth is None
            and not request.cookies
            and not self.params
            and self.auth is None
            and not self.cookies
            and not self.trust_env  # the environment could add auth (netrc)
            and isinstance(request.url, str)
            and isinstance(request.method, str)
        )
        return data if plain and isinstance(data, dict) else None

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        form = self._plain_form(request)
        if form is None:
            return super().prepare_request(request)
        url = str(request.url)
        prepared = requests.PreparedRequest()
        prepared.prepare_method(request.method)
        known = self._urls.get(url)
        if known is None:
            prepared.prepare_url(url, None)
            if len(self._urls) >= _MAX_URLS:
                self._urls.clear()
            self._urls[url] = str(prepared.url)
        else:
            prepared.url = known
        headers: CaseInsensitiveDict[Any] = CaseInsensitiveDict(self.headers)
        for name, value in (request.headers or {}).items():
            if value is None:  # as merge_setting: None removes a session header
                headers.pop(name, None)
            else:
                headers[name] = value
        prepared.prepare_headers(headers)
        prepared.prepare_cookies(RequestsCookieJar())
        body = urlencode([(k, v) for k, v in form.items() if v is not None])
        prepared.prepare_body(body, None, None)
        # requests names the form type itself when it encodes a dict (after the length);
        # the body was encoded here, so the type is named here, in the same place.
        if "Content-Type" not in prepared.headers:
            prepared.headers["Content-Type"] = _FORM
        prepared.prepare_auth(None, url)
        prepared.prepare_hooks(request.hooks)
        return prepared

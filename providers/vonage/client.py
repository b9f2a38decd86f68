"""SMS through Vonage's SMS API with the official SDK, each request sent at most once.

The SDK is synchronous and its client is not thread-safe, so calls run in a bounded
thread pool with one client per thread. Three things in the SDK are overridden on purpose:

* Re-sending. `HttpClient.make_request` re-sends a request whose connection ended in
  `RemoteDisconnected`, up to `pool_maxsize` times, although the server may have read
  (and sent) it: one SMS can leave several times. With `pool_maxsize=1` its loop runs
  once. Its `HTTPAdapter` also carries `Retry(total=max_retries)`; urllib3 would not
  replay a POST after a read error anyway, but our adapter sets `Retry(0, read=False)`
  so that no layer ever replays one. A lost connection after the request was written is
  reported as UNCONFIRMED, never retried here.
* Trust. `requests` lets `REQUESTS_CA_BUNDLE` (exported on this machine) override
  `session.verify`. We read the environment once (proxies, CA bundle) and turn
  `trust_env` off, and our adapter pins `verify` to `ca_file` at the last step, so the
  emulator's certificate is trusted whatever the environment says.
* Cost per send. The SDK's session is replaced by a `LeanSession` that prepares the SMS
  form itself (the same bytes, a third of requests' CPU), and our adapter keeps its pool
  and its checked CA bundle instead of looking them up (stat calls, a 30-field pool key)
  before every request: together about a quarter of a worker's CPU per message.

We call the SDK's lower layer `http_client.post(rest_host, "/sms/json", ...)` (exactly
what `Sms.send` does) because it returns the raw per-part JSON with numeric statuses,
where `Sms.send` turns a one-part error into a bare text and a partial failure into an
exception.

Partial failure of a long message: the parts Vonage accepted are billed and will reach
the phone; re-sending would duplicate them. Such a message is FAILED (the recipient got
a truncated text), keeping the accepted parts' ids (their receipts can still be matched),
their count and price, and a reason "vonage:partial k/n <code> <text>".

Every reason code goes back with its French description (`providers.vonage.errors`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from ssl import CertificateError, SSLCertVerificationError
from typing import Any

import requests
from pydantic import ValidationError
from requests.adapters import HTTPAdapter
from requests.utils import select_proxy
from urllib3 import Retry
from urllib3.exceptions import NewConnectionError
from vonage import Auth, HttpClientOptions, Vonage
from vonage_http_client.errors import HttpRequestError
from vonage_sms import SmsMessage

from providers.base import Outcome, SendResult, SmsRequest
from providers.vonage.errors import describe_failure
from providers.vonage.lean_session import LeanSession

__all__ = ["RETRYABLE_STATUSES", "VonageSmsProvider", "interpret_response"]

logger = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({1, 5})  # throttled, internal error: nothing was sent
_THROTTLE_PAUSE = 1.0  # Vonage counts throughput per second
_MAX_CONNECT_TIMEOUT = 5.0


class _SendOnceAdapter(HTTPAdapter):
    """An adapter that never replays a request and pins TLS trust and timeouts."""

    def __init__(self, ca_file: str | None, timeout: tuple[float, float]) -> None:
        super().__init__(
            pool_connections=1,
            pool_maxsize=1,
            max_retries=Retry(total=0, connect=0, read=False, redirect=False, other=0),
        )
        self._ca_file = ca_file
        self._timeout = timeout
        self._pools: dict[tuple[Any, ...], Any] = {}

    # Before every request, requests looks for the CA bundle on disk (stat calls) and
    # builds the pool's key anew (a 30-field tuple, with the bundle looked up again): a
    # fifth of a send's CPU here. The bundle, the host and the pool do not change between
    # sends: each is looked up once per pool.

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        key = (url.lower().startswith("https"), verify, repr(cert))
        if getattr(conn, "_campaigns_verified", None) == key:
            return
        super().cert_verify(conn, url, verify, cert)
        conn._campaigns_verified = key

    def get_connection_with_tls_context(
        self,
        request: requests.PreparedRequest,
        verify: Any,
        proxies: dict[str, str] | None = None,
        cert: Any = None,
    ) -> Any:
        if proxies and select_proxy(str(request.url), proxies):  # a proxy: as requests does
            return super().get_connection_with_tls_context(request, verify, proxies, cert)
        key = (request.url, verify, repr(cert))
        pool = self._pools.get(key)
        # A pool closed since is not used again. (One the manager dropped for another
        # host still works: urllib3 closes it when nobody holds it any more.)
        if pool is None or pool.pool is None:
            pool = super().get_connection_with_tls_context(request, verify, proxies, cert)
            if len(self._pools) >= 16:  # one URL in practice; bounded all the same
                self._pools.clear()
            self._pools[key] = pool
        return pool

    def close(self) -> None:
        self._pools.clear()
        super().close()

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        # Applied here, after requests merged the environment into `verify`.
        return super().send(
            request,
            stream=stream,
            timeout=self._timeout,
            verify=self._ca_file if self._ca_file else verify,
            cert=cert,
            proxies=proxies,
        )


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps (args, urllib3 reasons, causes, contexts)."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked.extend(current.args)
        stack.extend(item for item in linked if isinstance(item, BaseException))


def _nothing_sent(exc: BaseException) -> bool:
    """True when the request certainly never reached the server."""
    for cause in _causes(exc):
        # NewConnectionError covers refused connections and DNS failures; a certificate
        # rejected during the handshake means no byte of the request was written.
        if isinstance(cause, NewConnectionError | SSLCertVerificationError | CertificateError):
            return True
    return False


def _network_result(exc: requests.RequestException) -> SendResult:
    if isinstance(exc, requests.ConnectTimeout):
        return SendResult(Outcome.RETRY, parts=0, reason="vonage:connect-timeout", unreachable=True)
    if isinstance(exc, requests.ReadTimeout):
        return SendResult(Outcome.UNCONFIRMED, parts=0, reason="vonage:read-timeout")
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.InvalidSchema):
        return SendResult(Outcome.RETRY, parts=0, reason="vonage:bad-host")
    if _nothing_sent(exc):
        kind = "tls" if isinstance(exc, requests.exceptions.SSLError) else "connect-failed"
        return SendResult(Outcome.RETRY, parts=0, reason=f"vonage:{kind}", unreachable=True)
    return SendResult(Outcome.UNCONFIRMED, parts=0, reason="vonage:connection-lost")


def _http_error_result(exc: HttpRequestError) -> SendResult:
    """Vonage answered with an HTTP error: the SMS did not leave, it goes back to the queue.

    429 is a throttle (no attempt spent); a 4xx (credentials, account) or 5xx is tried
    again later, until the attempts run out.
    """
    status = exc.response.status_code
    retry_after = None
    header = exc.response.headers.get("Retry-After", "")
    if header.strip().isdigit():
        retry_after = float(header.strip())
    if status == 429 and retry_after is None:
        retry_after = _THROTTLE_PAUSE
    return SendResult(
        Outcome.RETRY,
        parts=0,
        reason=f"vonage:http-{status}",
        retry_after=retry_after,
        throttled=status == 429,
    )


def _price(entries: list[dict[str, Any]]) -> Decimal | None:
    total = Decimal(0)
    for entry in entries:
        try:
            total += Decimal(str(entry.get("message-price", "0")))
        except InvalidOperation:
            return None
    return total


def _describe(entry: dict[str, Any]) -> str:
    return f"{entry.get('status')} {entry.get('error-text', '')}".strip()


def interpret_response(data: Any) -> SendResult:
    """Map the SMS API's JSON answer (one entry per part) to a SendResult."""
    entries = data.get("messages") if isinstance(data, dict) else None
    if not entries:
        # The request reached Vonage and we cannot read the answer: it may have left.
        return SendResult(Outcome.UNCONFIRMED, parts=0, reason="vonage:unreadable-response")
    accepted = [e for e in entries if str(e.get("status")) == "0"]
    refused = [e for e in entries if str(e.get("status")) != "0"]
    ids = tuple(str(e.get("message-id", "")) for e in accepted)
    if not refused:
        return SendResult(Outcome.SUBMITTED, ids, parts=len(accepted), price=_price(accepted))
    if accepted:
        reason = f"vonage:partial {len(accepted)}/{len(entries)} {_describe(refused[0])}"
        return SendResult(
            Outcome.FAILED, ids, parts=len(accepted), price=_price(accepted), reason=reason
        )
    try:
        code = int(str(refused[0].get("status")))
    except ValueError:
        code = -1
    reason = f"vonage:{_describe(refused[0])}"
    if code in RETRYABLE_STATUSES:
        retry_after = _THROTTLE_PAUSE if code == 1 else None
        return SendResult(
            Outcome.RETRY, parts=0, reason=reason, retry_after=retry_after, throttled=code == 1
        )
    return SendResult(Outcome.FAILED, parts=0, reason=reason)


def _in_french(result: SendResult) -> SendResult:
    """The result with its reason code told in French, for the staff pages."""
    if result.reason is None:
        return result
    return replace(result, description=describe_failure(result.reason))


def _sdk_number(number: str) -> str:
    # Vonage wants international numbers without "+" or "00"; alphanumeric senders as is.
    return number[1:] if number.startswith("+") else number


class VonageSmsProvider:
    """Sends SMS with Vonage's SMS API; see the module docstring for the guarantees."""

    name = "vonage"

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        *,
        rest_host: str | None = None,
        timeout: float = 10,
        max_workers: int = 8,
        ca_file: str | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if ca_file and not os.path.isfile(ca_file):
            # Else every send would fail before leaving, reported as an unknown outcome.
            raise ValueError(f"VONAGE_CA_FILE : fichier introuvable ({ca_file})")
        self._api_key = api_key
        self._api_secret = api_secret
        self._rest_host = rest_host
        self._ca_file = str(ca_file) if ca_file else None
        self._timeout = (min(timeout, _MAX_CONNECT_TIMEOUT), float(timeout))
        self._sdk_timeout = max(1, math.ceil(timeout))  # the SDK only takes whole seconds
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix="vonage-sms")
        self._local = threading.local()
        self._clients: list[Vonage] = []
        self._clients_lock = threading.Lock()

    def _client(self) -> Vonage:
        client = getattr(self._local, "client", None)
        if client is None:
            options: dict[str, Any] = {
                "timeout": self._sdk_timeout,
                "pool_connections": 1,
                "pool_maxsize": 1,  # bounds the SDK's own re-send loop to one attempt
                "max_retries": 0,
            }
            if self._rest_host:
                options["rest_host"] = self._rest_host
                options["api_host"] = self._rest_host
            client = Vonage(Auth(self._api_key, self._api_secret), HttpClientOptions(**options))
            # No public way to reach the session: replaced by one that prepares the SMS
            # form cheaply (see lean_session), with our adapter over the SDK's.
            session = LeanSession()
            client.http_client._session = session
            session.mount("https://", _SendOnceAdapter(self._ca_file, self._timeout))
            self._settle_environment(session, client.http_client.rest_host)
            self._local.client = client
            with self._clients_lock:
                self._clients.append(client)
        return client

    def _settle_environment(self, session: requests.Session, host: str) -> None:
        """Read proxies and the CA bundle from the environment once, not per request.

        With `trust_env` on, requests scans the whole environment on every call (a third
        of the client's CPU time per SMS here), lets REQUESTS_CA_BUNDLE replace our CA,
        and lets a ~/.netrc entry replace the SDK's Authorization header.
        """
        session.proxies = dict(requests.utils.get_environ_proxies(f"https://{host}"))
        if self._ca_file:
            session.verify = self._ca_file
        else:
            env_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            session.verify = env_bundle or True
        session.trust_env = False

    def _params(self, req: SmsRequest) -> dict[str, Any]:
        message = SmsMessage(
            to=_sdk_number(req.to),
            from_=_sdk_number(req.sender),
            text=req.text,
            type="unicode" if req.unicode else "text",
            client_ref=req.message_id,
            status_report_req=req.status_report,
        )
        params: dict[str, Any] = message.model_dump(by_alias=True, exclude_none=True)
        return params

    def _send_blocking(self, req: SmsRequest) -> SendResult:
        try:
            params = self._params(req)
        except ValidationError as exc:
            fields = ",".join(str(err["loc"][0]) for err in exc.errors() if err.get("loc"))
            return SendResult(Outcome.FAILED, parts=0, reason=f"vonage:invalid-request {fields}")
        client = self._client()
        http = client.http_client
        try:
            data = http.post(http.rest_host, "/sms/json", params, "basic", "form")
        except HttpRequestError as exc:
            result = _http_error_result(exc)
        except requests.RequestException as exc:
            result = _network_result(exc)
        except Exception as exc:  # unknown failure mid-request: it may have left
            logger.warning(
                "vonage: message %s: unexpected %s (%s)", req.message_id, type(exc).__name__, exc
            )
            return SendResult(Outcome.UNCONFIRMED, parts=0, reason="vonage:unexpected-error")
        else:
            result = interpret_response(data)
        if result.outcome is not Outcome.SUBMITTED:
            logger.info("vonage: message %s %s (%s)", req.message_id, result.outcome, result.reason)
        return result

    async def send_sms(self, req: SmsRequest) -> SendResult:
        """Send one SMS. Cancelling the caller does not stop a request already started."""
        loop = asyncio.get_running_loop()
        return _in_french(await loop.run_in_executor(self._executor, self._send_blocking, req))

    async def close(self) -> None:
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.http_client._session.close()

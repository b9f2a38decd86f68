"""The Vonage provider, through the real SDK, against the project's emulator over TLS."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import certifi
import pytest
import vonage
from aiohttp import web
from vonage_sms import SmsMessage

from providers.base import Outcome, SmsProvider, SmsRequest
from providers.emulator import EmulatorConfig, VonageEmulator
from providers.vonage.client import VonageSmsProvider

KEY, SECRET = "test-key", "test-secret"
PRICE = Decimal("0.04870000")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("emulator-tls")


@pytest.fixture
async def emulator(cert_dir: Path):
    emu = VonageEmulator(EmulatorConfig(api_key=KEY, api_secret=SECRET), cert_dir=cert_dir)
    await emu.start()
    yield emu
    await emu.stop()


@pytest.fixture
async def provider(emulator: VonageEmulator):
    prov = VonageSmsProvider(
        KEY, SECRET, rest_host=emulator.rest_host, ca_file=str(emulator.ca_file), timeout=5
    )
    yield prov
    await prov.close()


def sms(n: int = 1, to: str = "+33612345678", text: str = "Bonjour, le CCAS vous appelle.", **kw):
    return SmsRequest(message_id=f"msg-{n}", to=to, sender="CCAS", text=text, unicode=False, **kw)


class Receiver:
    """A tiny webhook endpoint that keeps every delivery receipt it gets."""

    def __init__(self) -> None:
        self.receipts: list[dict] = []
        self.got = asyncio.Event()
        self.expected = 1

    async def handle(self, request: web.Request) -> web.Response:
        if request.method == "GET":
            params = dict(request.query)
        elif request.content_type == "application/json":
            params = await request.json()
        else:
            params = dict(await request.post())
        self.receipts.append({"method": request.method, "type": request.content_type, **params})
        if len(self.receipts) >= self.expected:
            self.got.set()
        return web.Response(status=204)


@pytest.fixture
async def receiver():
    rec = Receiver()
    app = web.Application()
    app.router.add_route("*", "/webhooks/vonage/status", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    rec.url = f"http://127.0.0.1:{port}/webhooks/vonage/status"
    yield rec
    await runner.cleanup()


async def test_provider_satisfies_the_protocol(provider: VonageSmsProvider) -> None:
    assert isinstance(provider, SmsProvider)


async def test_gsm_message_is_submitted_with_our_reference(provider, emulator) -> None:
    result = await provider.send_sms(sms(1))
    assert result.outcome is Outcome.SUBMITTED
    assert result.parts == 1 and result.price == PRICE and result.reason is None
    [got] = emulator.received
    assert got["message-ids"] == list(result.provider_ids)
    assert got["to"] == "33612345678"  # E.164 without "+", as Vonage wants it
    assert (got["from"], got["type"], got["client-ref"]) == ("CCAS", "text", "msg-1")
    assert got["status-report-req"].lower() == "true"


async def test_unicode_message_in_several_parts(provider, emulator) -> None:
    text = "Cœur du CCAS : nous pensons à vous pendant la canicule. " * 3  # 171 UCS-2 chars
    req = SmsRequest("msg-u", "+33612345678", "CCAS", text, unicode=True)
    result = await provider.send_sms(req)
    assert result.outcome is Outcome.SUBMITTED
    assert result.parts == 3 and len(set(result.provider_ids)) == 3
    assert result.price == 3 * PRICE
    assert emulator.received[0]["type"] == "unicode"


@pytest.mark.parametrize(
    ("config", "outcome", "reason"),
    [
        ({"fail_numbers": {"33612345678": 7}}, Outcome.FAILED, "vonage:7 Number Barred"),
        ({"fail_numbers": {"+33612345678": 29}}, Outcome.FAILED, "vonage:29 Non-Whitelisted"),
        ({"fail_numbers": {"33612345678": 5}}, Outcome.RETRY, "vonage:5 Internal Error"),
        ({"api_secret": "changed"}, Outcome.FAILED, "vonage:4 Bad Credentials"),
        ({"http_status_next": [500]}, Outcome.RETRY, "vonage:http-500"),
        ({"http_status_next": [503]}, Outcome.RETRY, "vonage:http-503"),
        ({"http_status_next": [429]}, Outcome.RETRY, "vonage:http-429"),
        # An HTTP 4xx answer: nothing left, the message goes back to the queue.
        ({"http_status_next": [401]}, Outcome.RETRY, "vonage:http-401"),
    ],
)
async def test_refusals_map_to_outcomes(provider, emulator, config, outcome, reason) -> None:
    throttle = config.get("http_status_next") == [429]
    emulator.update(**config)
    result = await provider.send_sms(sms())
    assert result.outcome is outcome
    assert result.reason.startswith(reason)
    assert result.provider_ids == () and result.parts == 0
    assert len(emulator.received) == 1
    if throttle:
        assert result.retry_after == 1.0
    assert result.throttled == throttle


async def test_throttling_asks_to_retry_after_a_second(provider, emulator) -> None:
    emulator.config.throttle_per_second = 1
    results = await asyncio.gather(*(provider.send_sms(sms(n)) for n in range(4)))
    outcomes = [r.outcome for r in results]
    # Four sends within at most two one-second windows: at most two get through.
    assert outcomes.count(Outcome.SUBMITTED) <= 2
    throttled = [r for r in results if r.outcome is Outcome.RETRY]
    assert len(throttled) >= 2
    assert all(r.reason.startswith("vonage:1 Throughput") for r in throttled)
    assert all(r.retry_after == 1.0 and r.throttled for r in throttled)


async def test_partial_failure_keeps_the_parts_that_left(provider, emulator) -> None:
    emulator.config.partial_fail_numbers = {"33612345678": 5}
    result = await provider.send_sms(sms(text="x" * 200))  # two GSM parts, the last refused
    assert result.outcome is Outcome.FAILED
    assert result.reason.startswith("vonage:partial 1/2 5 ")
    assert len(result.provider_ids) == 1 and result.parts == 1 and result.price == PRICE


async def test_dropped_connection_is_unconfirmed_and_never_resent(provider, emulator) -> None:
    emulator.config.drop_connection_next = 5  # room for every re-send the SDK would make
    result = await provider.send_sms(sms(7))
    assert result.outcome is Outcome.UNCONFIRMED
    assert result.reason == "vonage:connection-lost"
    assert emulator.counts()["by_client_ref"] == {"msg-7": 1}
    # The same provider (same threads, same sessions) still works afterwards.
    emulator.config.drop_connection_next = 0
    assert (await provider.send_sms(sms(8))).outcome is Outcome.SUBMITTED


async def test_the_stock_sdk_would_send_it_three_times(emulator, monkeypatch) -> None:
    """Why the provider overrides the SDK: its own loop re-sends after RemoteDisconnected."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emulator.ca_file))
    client = vonage.Vonage(
        vonage.Auth(api_key=KEY, api_secret=SECRET),
        vonage.HttpClientOptions(rest_host=emulator.rest_host, timeout=5),
    )
    emulator.config.drop_connection_next = 2
    message = SmsMessage(to="33612345678", from_="CCAS", text="test", client_ref="stock-1")
    try:
        response = await asyncio.to_thread(client.sms.send, message)
    finally:
        client.http_client._session.close()
    assert response.messages[0].status == "0"
    assert emulator.counts()["by_client_ref"] == {"stock-1": 3}


async def test_read_timeout_is_unconfirmed(emulator) -> None:
    prov = VonageSmsProvider(
        KEY, SECRET, rest_host=emulator.rest_host, ca_file=str(emulator.ca_file), timeout=0.5
    )
    emulator.config.latency_ms = 1500
    try:
        result = await prov.send_sms(sms(9))
    finally:
        await prov.close()
    assert result.outcome is Outcome.UNCONFIRMED and result.reason == "vonage:read-timeout"
    assert len(emulator.received) == 1


async def test_nothing_listening_is_retry(cert_dir) -> None:
    emu = VonageEmulator(cert_dir=cert_dir)
    await emu.start()
    rest_host, ca_file = emu.rest_host, str(emu.ca_file)
    await emu.stop()  # the port is now closed
    prov = VonageSmsProvider(KEY, SECRET, rest_host=rest_host, ca_file=ca_file, timeout=2)
    try:
        result = await prov.send_sms(sms())
    finally:
        await prov.close()
    assert result.outcome is Outcome.RETRY and result.reason == "vonage:connect-failed"


async def test_ca_file_wins_over_requests_ca_bundle(emulator, monkeypatch) -> None:
    # The machine exports REQUESTS_CA_BUNDLE, which would override session.verify.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    trusting = VonageSmsProvider(
        KEY, SECRET, rest_host=emulator.rest_host, ca_file=str(emulator.ca_file)
    )
    default = VonageSmsProvider(KEY, SECRET, rest_host=emulator.rest_host)
    try:
        assert (await trusting.send_sms(sms(1))).outcome is Outcome.SUBMITTED
        refused = await default.send_sms(sms(2))
    finally:
        await trusting.close()
        await default.close()
    # An untrusted certificate stops the handshake: nothing was sent, safe to retry.
    assert refused.outcome is Outcome.RETRY and refused.reason == "vonage:tls"
    assert emulator.counts()["by_client_ref"] == {"msg-1": 1}


async def test_fifty_concurrent_sends(provider, emulator) -> None:
    results = await asyncio.gather(*(provider.send_sms(sms(n)) for n in range(50)))
    assert all(r.outcome is Outcome.SUBMITTED for r in results)
    ids = {pid for r in results for pid in r.provider_ids}
    assert len(ids) == 50
    counts = emulator.counts()["by_client_ref"]
    assert len(counts) == 50 and set(counts.values()) == {1}


@pytest.mark.parametrize("fmt", ["json", "form", "get"])
async def test_delivery_receipts_in_each_format(provider, emulator, receiver, fmt) -> None:
    emulator.update(dlr_url=receiver.url, dlr_format=fmt, dlr_delay_ms=10)
    receiver.expected = 2
    result = await provider.send_sms(sms(3, text="y" * 170))  # two parts, two receipts
    await asyncio.wait_for(receiver.got.wait(), 5)
    assert {r["messageId"] for r in receiver.receipts} == set(result.provider_ids)
    expected_method = "GET" if fmt == "get" else "POST"
    for receipt in receiver.receipts:
        assert receipt["method"] == expected_method
        assert receipt["status"] == "delivered" and receipt["err-code"] == "0"
        assert receipt["msisdn"] == "33612345678" and receipt["to"] == "CCAS"
        assert receipt["client-ref"] == "msg-3" and receipt["api-key"] == KEY
        assert Decimal(receipt["price"]) == PRICE
        assert re.fullmatch(r"\d{10}", receipt["scts"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", receipt["message-timestamp"])
        assert "sig" not in receipt
    await emulator.drain_receipts()
    assert emulator.dlr_sent == 2 and emulator.dlr_failures == 0


async def test_failed_receipt_carries_an_error_code(provider, emulator, receiver) -> None:
    emulator.update(dlr_url=receiver.url, dlr_status_for={"+33612345678": "failed:4"})
    await provider.send_sms(sms())
    await asyncio.wait_for(receiver.got.wait(), 5)
    assert (receiver.receipts[0]["status"], receiver.receipts[0]["err-code"]) == ("failed", "4")


@pytest.mark.parametrize("method", ["sha256", "md5hash"])
async def test_signed_receipts_verify(provider, emulator, receiver, method) -> None:
    secret = "signature-secret-for-tests"
    emulator.update(dlr_url=receiver.url, dlr_signature_secret=secret, dlr_signature_method=method)
    await provider.send_sms(sms())
    await asyncio.wait_for(receiver.got.wait(), 5)
    receipt = {k: v for k, v in receiver.receipts[0].items() if k not in ("method", "type")}
    assert {"timestamp", "nonce", "sig"} <= receipt.keys()
    assert abs(int(receipt["timestamp"]) - time.time()) < 60
    if method == "md5hash":
        base = "".join(
            f"&{k}={receipt[k].replace('&', '_').replace('=', '_')}"
            for k in sorted(receipt)
            if k != "sig"
        )
        assert receipt["sig"] == hashlib.md5((base + secret).encode()).hexdigest()
    else:
        auth = vonage.Auth(api_key=KEY, signature_secret=secret, signature_method=method)
        assert auth.check_signature(dict(receipt))
        assert not auth.check_signature({**receipt, "status": "failed"})


async def test_receipts_that_cannot_be_posted_are_counted(provider, emulator) -> None:
    emulator.update(dlr_url="http://127.0.0.1:9/nowhere", dlr_retries=1, dlr_delay_ms=0)
    await provider.send_sms(sms())
    await asyncio.wait_for(emulator.drain_receipts(), 5)
    assert emulator.dlr_failures == 1 and emulator.dlr_sent == 0


@pytest.fixture
def emulator_process(cert_dir: Path):
    """The emulator in its own process, started by its CLI, as the benchmark runs it."""
    command = [sys.executable, "-m", "providers.emulator", "--port", "0"]
    command += ["--cert-dir", str(cert_dir), "--api-key", KEY, "--api-secret", SECRET]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    info = {}
    for line in proc.stdout:
        key, sep, value = line.strip().partition("=")
        if sep:
            info[key] = value
        if "ca_file" in info:
            break
    yield info
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "2000 requête(s) reçue(s)" in out


async def test_throughput_through_the_provider(emulator_process) -> None:
    prov = VonageSmsProvider(
        KEY,
        SECRET,
        rest_host=emulator_process["rest_host"],
        ca_file=emulator_process["ca_file"],
        max_workers=8,
    )
    try:
        await prov.send_sms(sms(-1))  # warm-up: not counted in the rate
        started = time.perf_counter()
        sem = asyncio.Semaphore(64)

        async def one(n: int) -> Outcome:
            async with sem:
                return (await prov.send_sms(sms(n))).outcome

        outcomes = await asyncio.gather(*(one(n) for n in range(1999)))
        elapsed = time.perf_counter() - started
    finally:
        await prov.close()
    assert outcomes.count(Outcome.SUBMITTED) == 1999
    print(f"\nVonage provider -> emulator (separate process): {1999 / elapsed:.0f} SMS/s")


async def test_the_adapter_keeps_its_pool_until_it_is_closed(emulator) -> None:
    from providers.vonage.client import _SendOnceAdapter
    from providers.vonage.lean_session import LeanSession

    session = LeanSession()
    session.trust_env = False
    adapter = _SendOnceAdapter(str(emulator.ca_file), (5.0, 5.0))
    session.mount("https://", adapter)
    url = f"https://{emulator.rest_host}/sms/json"
    form = {"api_key": KEY, "api_secret": SECRET, "from": "CCAS", "to": "33612345678"}

    def send(n: int) -> tuple[int, object]:
        response = session.post(url, data={**form, "text": f"n{n}", "client-ref": str(n)})
        request = response.request
        return response.status_code, adapter.get_connection_with_tls_context(
            request, str(emulator.ca_file)
        )

    (first, pool), (second, same) = [await asyncio.to_thread(send, n) for n in (1, 2)]
    assert (first, second) == (200, 200) and same is pool
    adapter.close()  # drops its pools: the next send takes a new one
    third, other = await asyncio.to_thread(send, 3)
    assert third == 200 and other is not pool
    assert [m["client-ref"] for m in emulator.received] == ["1", "2", "3"]
    session.close()

"""The Vonage SMS API emulator on its own: its answers, its knobs, its TLS certificate."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import ssl
from http.client import RemoteDisconnected
from pathlib import Path

import aiohttp
import pytest
import requests
from cryptography import x509

from providers.base import estimate_sms_parts
from providers.emulator import EmulatorConfig, VonageEmulator
from providers.tls import make_self_signed

KEY, SECRET = "k", "s"


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
async def http(emulator: VonageEmulator):
    context = ssl.create_default_context(cafile=str(emulator.ca_file))
    connector = aiohttp.TCPConnector(ssl=context)
    async with aiohttp.ClientSession(
        base_url=f"https://{emulator.rest_host}", connector=connector
    ) as session:
        yield session


def form(to: str = "33612345678", text: str = "Bonjour", **extra: str) -> dict[str, str]:
    return {"api_key": KEY, "api_secret": SECRET, "to": to, "from": "CCAS", "text": text, **extra}


async def send(http: aiohttp.ClientSession, data: dict, *, as_json: bool = False) -> dict:
    kwargs = {"json": data} if as_json else {"data": data}
    async with http.post("/sms/json", **kwargs) as response:
        assert response.status == 200
        return await response.json()


def test_certificate_is_made_once_and_names_both_hosts(tmp_path: Path) -> None:
    cert_path, key_path = make_self_signed(tmp_path)
    first = cert_path.read_bytes()
    assert make_self_signed(tmp_path) == (cert_path, key_path)
    assert cert_path.read_bytes() == first  # reused, not regenerated
    assert key_path.stat().st_mode & 0o077 == 0
    cert = x509.load_pem_x509_certificate(first)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


@pytest.mark.parametrize(
    ("text", "unicode", "parts"),
    [
        ("a" * 160, False, 1),
        ("a" * 161, False, 2),
        ("a" * 306, False, 2),
        ("a" * 307, False, 3),
        ("€" * 80, False, 1),  # extended table: two septets each
        ("€" * 81, False, 2),
        ("é" * 70, True, 1),
        ("é" * 71, True, 2),
        ("é" * 134, True, 2),
        ("é" * 135, True, 3),
        ("🙂" * 35, True, 1),  # outside the BMP: two UTF-16 units each
        ("🙂" * 36, True, 2),
    ],
)
def test_parts_are_counted_like_vonage(text: str, unicode: bool, parts: int) -> None:
    assert estimate_sms_parts(text, unicode) == parts


@pytest.mark.parametrize("as_json", [False, True])
async def test_answers_like_vonage(http, emulator, as_json: bool) -> None:
    body = await send(
        http, form(text="é" * 100, type="unicode", **{"client-ref": "m1"}), as_json=as_json
    )
    assert body["message-count"] == "2"
    first, second = body["messages"]
    assert first.keys() >= {"to", "message-id", "status", "remaining-balance", "message-price"}
    assert (first["status"], first["to"], first["client-ref"]) == ("0", "33612345678", "m1")
    assert first["message-id"] != second["message-id"]
    assert float(second["remaining-balance"]) < float(first["remaining-balance"])
    [got] = emulator.received
    assert (got["type"], got["client-ref"], got["from"]) == ("unicode", "m1", "CCAS")


async def test_message_ids_are_unique(http) -> None:
    bodies = await asyncio.gather(*(send(http, form()) for _ in range(100)))
    assert len({b["messages"][0]["message-id"] for b in bodies}) == 100


@pytest.mark.parametrize(
    ("data", "status"),
    [
        ({**form(), "api_secret": "wrong"}, "4"),
        ({k: v for k, v in form().items() if k != "to"}, "2"),
    ],
)
async def test_refuses_bad_requests(http, data: dict, status: str) -> None:
    body = await send(http, data)
    assert body["messages"][0]["status"] == status
    assert body["messages"][0]["error-text"]


async def test_basic_auth_is_accepted(http) -> None:
    data = {k: v for k, v in form().items() if not k.startswith("api_")}
    headers = {"Authorization": "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()}
    async with http.post("/sms/json", data=data, headers=headers) as resp:
        assert (await resp.json())["messages"][0]["status"] == "0"


async def test_http_status_next_then_normal(http, emulator) -> None:
    emulator.config.http_status_next = [429, 500]
    statuses = []
    for _ in range(3):
        async with http.post("/sms/json", data=form()) as response:
            statuses.append(response.status)
    assert statuses == [429, 500, 200]


async def test_fail_rate_is_reproducible(cert_dir: Path) -> None:
    async def statuses() -> list[str]:
        emu = VonageEmulator(EmulatorConfig(api_key=KEY, api_secret=SECRET), cert_dir=cert_dir)
        emu.update(fail_rate=0.5, seed=7)
        await emu.start()
        try:
            context = ssl.create_default_context(cafile=str(emu.ca_file))
            async with aiohttp.ClientSession(
                base_url=f"https://{emu.rest_host}", connector=aiohttp.TCPConnector(ssl=context)
            ) as session:
                return [(await send(session, form()))["messages"][0]["status"] for _ in range(20)]
        finally:
            await emu.stop()

    first, second = await statuses(), await statuses()
    assert first == second
    assert set(first) == {"0", "5"}


async def test_config_and_received_over_http(http, emulator) -> None:
    async with http.post("/_emulator/config", json={"throttle_per_second": 2}) as response:
        assert response.status == 200
        assert (await response.json())["throttle_per_second"] == 2
    assert emulator.config.throttle_per_second == 2
    async with http.post("/_emulator/config", json={"no_such_knob": 1}) as response:
        assert response.status == 400
    await send(http, form(**{"client-ref": "a"}))
    await send(http, form(to="33700000000", **{"client-ref": "a"}))
    async with http.get("/_emulator/received") as response:
        body = await response.json()
    assert body["count"] == 2 and body["by_client_ref"] == {"a": 2}
    assert body["by_to"] == {"33612345678": 1, "33700000000": 1}
    async with http.delete("/_emulator/received") as response:
        assert response.status == 200
    assert emulator.received == []


async def test_dropped_connection_after_reading_the_request(emulator) -> None:
    """A plain requests client sees RemoteDisconnected: the case the SDK would re-send."""
    emulator.config.drop_connection_next = 1

    def post() -> BaseException:
        with requests.Session() as session, pytest.raises(requests.ConnectionError) as caught:
            session.post(
                f"https://{emulator.rest_host}/sms/json",
                data=form(**{"client-ref": "d1"}),
                verify=str(emulator.ca_file),
                timeout=5,
            )
        return caught.value

    error = await asyncio.to_thread(post)
    reasons = [arg for arg in error.args[0].args if isinstance(arg, BaseException)]
    assert any(isinstance(reason, RemoteDisconnected) for reason in reasons)
    assert emulator.counts()["by_client_ref"] == {"d1": 1}
    assert emulator.received[0]["status"] == "dropped"

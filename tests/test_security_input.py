"""Security findings of issue 12, input side: the login throttle under concurrency and
spraying, shared through Redis; bad input answered with a French 4xx, never a 500."""

from __future__ import annotations

import asyncio
import gzip
import json
import uuid

import pytest
from aiohttp.test_utils import TestClient

from campaigns import staff as staff_service
from campaigns.core.errors import Invalid
from campaigns.core.settings import Settings
from campaigns.web.http import INT32_MAX, json_depth, require_shallow_json
from campaigns.web.throttle import Limits, LoginThrottle, RedisLoginThrottle
from tests.conftest import Tokens
from tests.services import REDIS_URL, require_redis

# --- the login throttle ----------------------------------------------------------------


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password actually checked (argon2 run), in order."""
    checked: list[str] = []
    verify = staff_service.verify_password

    def counting(password_hash: str, password: str) -> bool:
        checked.append(password)
        return verify(password_hash, password)

    monkeypatch.setattr(staff_service, "verify_password", counting)
    return checked


async def test_40_concurrent_wrong_passwords_check_at_most_the_limit(
    client: TestClient, tokens: Tokens, counted: list[str]
) -> None:
    body = {"email": "admin@ccas.test", "password": "mauvais"}
    responses = await asyncio.gather(
        *(client.post("/api/v1/auth/token", json=body) for _ in range(40))
    )
    statuses = sorted(r.status for r in responses)
    assert len(counted) <= 5
    assert statuses.count(401) == len(counted)
    assert statuses.count(429) == 40 - len(counted)
    assert (await responses[-1].json())["detail"].startswith("Trop de tentatives")


async def test_one_password_sprayed_over_30_emails_is_limited(
    client: TestClient, tokens: Tokens, counted: list[str]
) -> None:
    statuses = []
    for n in range(30):
        body = {"email": f"agent{n}@ccas.test", "password": "Printemps2026!"}
        statuses.append((await client.post("/api/v1/auth/token", json=body)).status)
    assert 429 in statuses
    assert len(counted) <= Limits().address


async def test_a_lockout_survives_failures_on_10000_other_emails() -> None:
    throttle = LoginThrottle(Limits(account=3, address=10**6, overall=20_000))
    for _ in range(3):
        assert await throttle.reserve("10.0.0.1", "victime@ccas.test")
    for n in range(10_000):
        await throttle.reserve(f"10.1.{n // 250}.{n % 250}", f"autre{n}@ccas.test")
    assert not await throttle.reserve("10.0.0.9", "victime@ccas.test")
    assert len(throttle._counts) <= throttle.max_entries


async def test_the_overall_limit_stops_spraying_from_many_addresses() -> None:
    throttle = LoginThrottle(Limits(account=5, address=5, overall=50))
    allowed = [await throttle.reserve(f"10.0.{n}.1", f"a{n}@x.fr") for n in range(80)]
    assert allowed.count(True) == 50
    # A success gives its place back and clears the account's count.
    await throttle.succeeded("10.0.0.1", "a0@x.fr")
    assert await throttle.reserve("10.0.0.1", "a0@x.fr")


@pytest.mark.redis
async def test_the_redis_throttle_is_shared_and_atomic() -> None:
    require_redis()
    from redis.asyncio import Redis

    redis = Redis.from_url(REDIS_URL)
    prefix = f"test-{uuid.uuid4().hex}"
    try:
        one = RedisLoginThrottle(redis, prefix, Limits(account=5))
        two = RedisLoginThrottle(redis, prefix, Limits(account=5))
        results = await asyncio.gather(
            *((one if n % 2 else two).reserve("10.0.0.1", "admin@ccas.test") for n in range(40))
        )
        assert results.count(True) == 5
        await one.succeeded("10.0.0.1", "admin@ccas.test")
        assert await two.reserve("10.0.0.1", "admin@ccas.test")
    finally:
        keys = await redis.keys(f"{prefix}:*")
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


async def test_the_app_uses_the_redis_throttle_when_redis_is_configured(runtime) -> None:
    from campaigns.web.app import create_app
    from campaigns.web.keys import LOGIN_THROTTLE

    assert type(create_app(runtime)[LOGIN_THROTTLE]) is LoginThrottle
    runtime.redis = object()  # type: ignore[assignment]
    try:
        assert isinstance(create_app(runtime)[LOGIN_THROTTLE], RedisLoginThrottle)
    finally:
        runtime.redis = None


# --- bad input: a French 4xx, never a 500 ----------------------------------------------


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


async def _is_french_4xx(response) -> None:
    assert 400 <= response.status < 500, (response.status, await response.text())
    body = await response.json()
    assert set(body) == {"error", "detail"}


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/people/{INT32_MAX + 1}",
        "/api/v1/people/99999999999999999999999",
        f"/api/v1/campaigns/{INT32_MAX + 1}",
        f"/api/v1/templates/{2**63}",
        "/api/v1/campaigns?status=inconnu",
        "/api/v1/campaigns/1/messages?status=inconnu",
        "/api/v1/templates?channel=pigeon",
        "/api/v1/escalations?status=nimporte",
        "/api/v1/people?segment=" + "x" * 500,
        "/api/v1/people?q=%00",
        "/api/v1/people?page=99999999999999999999",
        f"/api/v1/replies?campaign_id={INT32_MAX + 1}",
    ],
)
async def test_bad_parameters_get_a_french_4xx(client, tokens, path: str) -> None:
    await _is_french_4xx(await client.get(path, headers=tokens.headers("admin")))


async def test_deep_json_is_refused_before_it_is_parsed(client, tokens) -> None:
    deep = '{"email": ' + _deep(1000) + ', "password": "x"}'
    token = await client.post(
        "/api/v1/auth/token", data=deep, headers={"Content-Type": "application/json"}
    )
    await _is_french_4xx(token)
    assert (await token.json())["error"] == "json_too_deep"
    patch = await client.patch(
        "/api/v1/people/1",
        data='{"district": ' + _deep(1000) + "}",
        headers={**tokens.headers("admin"), "Content-Type": "application/json"},
    )
    await _is_french_4xx(patch)
    assert json_depth(b'{"a": "[[[[[[", "b": [[1]]}') == 3


async def test_deep_json_on_a_webhook_is_a_4xx(client) -> None:
    response = await client.post(
        "/webhooks/vonage/inbound",
        data=_deep(5000),
        headers={"Content-Type": "application/json"},
    )
    assert 400 <= response.status < 500
    with pytest.raises(Invalid):
        require_shallow_json(_deep(40).encode())
    assert require_shallow_json(b'{"a": [1]}') == b'{"a": [1]}'


async def test_large_bodies_are_refused_before_anyone_is_known(client, tokens) -> None:
    token = await client.post("/api/v1/auth/token", data=b"x" * 10_000)
    assert token.status == 413
    assert (await token.json())["detail"] == "Corps de la requête trop volumineux"
    webhook = await client.post("/webhooks/vonage/inbound", data=b"x" * 70_000)
    assert webhook.status == 413
    anyone = await client.post("/api/v1/audiences", data=b"x" * (2 * 1024 * 1024))
    assert anyone.status == 413

    async def chunked():
        for _ in range(10):
            yield b"x" * 1024

    streamed = await client.post("/api/v1/auth/token", data=chunked())
    assert streamed.status == 413

    async def chunked_webhook():
        for _ in range(70):
            yield b"x" * 1024

    streamed = await client.post(
        "/webhooks/vonage/inbound",
        data=chunked_webhook(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert streamed.status == 413
    # A small compressed body is capped by what it inflates to, not by its length.
    inflating = gzip.compress(b"text=" + b"a" * 2_000_000)
    assert len(inflating) < 64 * 1024
    compressed = await client.post(
        "/webhooks/vonage/inbound",
        data=inflating,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Content-Encoding": "gzip",
        },
    )
    assert compressed.status == 413


async def test_nul_characters_and_huge_ids_in_bodies_get_a_4xx(client, tokens) -> None:
    headers = tokens.headers("admin")
    nul = await client.patch("/api/v1/people/1", json={"district": "a\x00b"}, headers=headers)
    await _is_french_4xx(nul)
    huge = await client.post(
        "/api/v1/templates/preview",
        json={"channel": "sms", "body": "Bonjour", "person_id": 2**40},
        headers=headers,
    )
    await _is_french_4xx(huge)


async def test_405_names_the_allowed_methods(client, tokens) -> None:
    response = await client.put("/api/v1/people", headers=tokens.headers("admin"))
    assert response.status == 405
    assert "GET" in response.headers["Allow"]
    await _is_french_4xx(response)


async def test_openapi_types_ids_as_bounded_integers(client) -> None:
    document = await (await client.get("/api/openapi.json")).json()
    person = document["paths"]["/api/v1/people/{id}"]["get"]["parameters"][0]
    assert person["schema"] == {"type": "integer", "minimum": 1, "maximum": INT32_MAX}
    status = next(
        p
        for p in document["paths"]["/api/v1/campaigns"]["get"]["parameters"]
        if p["name"] == "status"
    )
    assert "running" in status["schema"]["enum"]
    json.dumps(document)


def test_no_development_key_signs_anything_with_a_real_channel() -> None:
    for env in (
        {"CAMPAIGNS_SMS_PROVIDER": "vonage", "VONAGE_SIGNATURE_SECRET": "s" * 32},
        {"CAMPAIGNS_SMTP_HOST": "smtp.example.fr"},
        {"CAMPAIGNS_EMAIL_PROVIDER": "smtp", "CAMPAIGNS_SMTP_HOST": "smtp.example.fr"},
    ):
        with pytest.raises(ValueError, match="CAMPAIGNS_SECRET_KEY"):
            Settings(_env_file=None, **env)  # type: ignore[call-arg]

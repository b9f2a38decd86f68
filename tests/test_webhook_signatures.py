"""Vonage webhook signatures: every method, freshness, replay, and the nonce stores."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from itertools import permutations
from pathlib import Path

import pytest
import vonage
from redis.asyncio import Redis

from campaigns.core.nonce_store import MemoryNonceStore, RedisNonceStore
from providers.vonage.payloads import decode_json_body, merge_request_params
from providers.vonage.signatures import (
    HMAC_METHODS,
    SIGNATURE_METHODS,
    SignatureError,
    sign_params,
    signature_base,
    verify_signature,
    verify_signed_request,
)
from tests.services import REDIS_URL, require_redis

EXAMPLES_FILE = Path(__file__).resolve().parent / "data" / "vonage_webhooks.json"
EXAMPLES = json.loads(EXAMPLES_FILE.read_text(encoding="utf-8"))
SECRET = EXAMPLES["signature_secret"]
SIGNED = EXAMPLES["signed_inbound"]
SIGNED_AT = datetime.fromtimestamp(int(SIGNED["sha256"]["timestamp"]), tz=UTC)


def _verify(params, method: str, **kwargs) -> None:
    kwargs.setdefault("now", SIGNED_AT)
    verify_signature(params, secret=SECRET, method=method, **kwargs)


def _code(params, method: str, **kwargs) -> str:
    with pytest.raises(SignatureError) as caught:
        _verify(params, method, **kwargs)
    assert caught.value.detail
    return caught.value.code


# --- the published examples ------------------------------------------------------------


@pytest.mark.parametrize("method", SIGNATURE_METHODS)
def test_every_signed_example_verifies(method: str) -> None:
    """Each example verifies with its method and the test secret, at its own timestamp."""
    params = dict(SIGNED[method])
    _verify(params, method)
    assert params == SIGNED[method], "verification must not change the caller's dict"


@pytest.mark.parametrize("method", SIGNATURE_METHODS)
def test_our_signer_reproduces_every_example(method: str) -> None:
    """sign_params gives exactly the signature Vonage put in the example."""
    example = SIGNED[method]
    unsigned = {k: v for k, v in example.items() if k not in {"sig", "timestamp", "nonce"}}
    signed = sign_params(unsigned, SECRET, method, int(example["timestamp"]), example["nonce"])
    assert signed == example


@pytest.mark.parametrize("method", SIGNATURE_METHODS)
def test_examples_survive_the_json_and_form_round_trip(method: str) -> None:
    """Merging the example as a JSON body keeps it verifiable."""
    params = merge_request_params({}, None, json.loads(json.dumps(SIGNED[method])))
    _verify(params, method)


@pytest.mark.parametrize("method", SIGNATURE_METHODS)
def test_json_numbers_and_booleans_verify_as_their_text(method: str) -> None:
    """A JSON body with numeric and boolean values checks against the form-encoded text."""
    form = {"messageId": "M1", "concat": "true", "concat-part": "2", "price": "0.04500000"}
    signed = sign_params(form, SECRET, method, int(SIGNED_AT.timestamp()), "n-1")
    body = json.dumps({**signed, "concat": True, "concat-part": 2, "timestamp": 1795425302})
    body = body.replace('"price": "0.04500000"', '"price": 0.04500000')
    _verify(merge_request_params({}, None, decode_json_body(body)), method)


@pytest.mark.parametrize("method", SIGNATURE_METHODS)
def test_upper_case_signatures_are_accepted(method: str) -> None:
    """Some Vonage SDKs write the HMAC in upper case: hex case does not matter."""
    params = {**SIGNED[method], "sig": SIGNED[method]["sig"].upper()}
    _verify(params, method)


# --- what must fail --------------------------------------------------------------------


@pytest.mark.parametrize("method", SIGNATURE_METHODS)
@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("text", "Non merci"),
        ("msisdn", "33699999999"),
        ("timestamp", str(int(SIGNED["md5"]["timestamp"]) + 1)),
        ("nonce", "another"),
        ("extra", "field"),
    ],
)
def test_a_tampered_field_fails(method: str, key: str, value: str) -> None:
    """Changing or adding any field breaks the signature."""
    assert _code({**SIGNED[method], key: value}, method) == "bad_signature"


@pytest.mark.parametrize("method", SIGNATURE_METHODS)
def test_a_removed_field_fails(method: str) -> None:
    """Dropping a field breaks the signature."""
    params = {k: v for k, v in SIGNED[method].items() if k != "keyword"}
    assert _code(params, method) == "bad_signature"


@pytest.mark.parametrize(("signed_with", "checked_with"), list(permutations(SIGNATURE_METHODS, 2)))
def test_a_wrong_method_fails(signed_with: str, checked_with: str) -> None:
    """A signature made with one method never verifies with another."""
    assert _code(SIGNED[signed_with], checked_with) == "bad_signature"


@pytest.mark.parametrize("method", SIGNATURE_METHODS)
def test_a_wrong_secret_fails(method: str) -> None:
    """The right method with another secret fails."""
    with pytest.raises(SignatureError) as caught:
        verify_signature(SIGNED[method], secret="other", method=method, now=SIGNED_AT)
    assert caught.value.code == "bad_signature"


@pytest.mark.parametrize("method", SIGNATURE_METHODS)
@pytest.mark.parametrize(
    ("offset", "code"),
    [
        (timedelta(0), None),
        (timedelta(minutes=5), None),
        (-timedelta(minutes=5), None),
        (timedelta(minutes=5, seconds=1), "stale_timestamp"),
        (-timedelta(minutes=5, seconds=1), "stale_timestamp"),
        (timedelta(days=2), "stale_timestamp"),
    ],
)
def test_freshness_both_ways(method: str, offset: timedelta, code: str | None) -> None:
    """The timestamp must be within max_age of now, in the past or the future."""
    now = SIGNED_AT + offset
    if code is None:
        _verify(SIGNED[method], method, now=now)
    else:
        assert _code(SIGNED[method], method, now=now) == code


def test_max_age_is_a_parameter() -> None:
    """A tighter max_age refuses what the default accepts."""
    now = SIGNED_AT + timedelta(seconds=90)
    _verify(SIGNED["sha256"], "sha256", now=now)
    code = _code(SIGNED["sha256"], "sha256", now=now, max_age=timedelta(minutes=1))
    assert code == "stale_timestamp"


def _hand_sign(params: dict[str, str], method: str) -> str:
    """An independent signer, straight from Vonage's description, for odd inputs."""
    base = "".join(
        f"&{k}={v.replace('&', '_').replace('=', '_')}" for k, v in sorted(params.items())
    ).encode()
    if method == "md5hash":
        return hashlib.md5(base + SECRET.encode()).hexdigest()
    return hmac.new(SECRET.encode(), base, method).hexdigest()


@pytest.mark.parametrize("timestamp", [None, "", "soon", "١٧٩٥٤٢٥٣٠٢"])
@pytest.mark.parametrize("method", SIGNATURE_METHODS)
def test_signed_request_without_a_usable_timestamp_fails(method: str, timestamp) -> None:
    """A correctly signed request without a numeric timestamp cannot be shown fresh."""
    params = {k: v for k, v in SIGNED[method].items() if k not in {"sig", "timestamp"}}
    if timestamp is not None:
        params["timestamp"] = timestamp
    params["sig"] = _hand_sign(params, method)
    # The SDK fills a missing or empty timestamp with time() before hashing: bad signature.
    expected = "stale_timestamp" if method == "md5hash" or timestamp else "bad_signature"
    assert _code(params, method) == expected


@pytest.mark.parametrize("method", SIGNATURE_METHODS)
@pytest.mark.parametrize("sig", [None, "", "   "])
def test_missing_signature(method: str, sig) -> None:
    """No sig, or a blank one, is missing_signature."""
    params = {k: v for k, v in SIGNED[method].items() if k != "sig"}
    if sig is not None:
        params["sig"] = sig
    assert _code(params, method) == "missing_signature"


@pytest.mark.parametrize("method", SIGNATURE_METHODS)
@pytest.mark.parametrize("sig", ["é" * 32, "zz", " " + SIGNED["md5"]["sig"], "0" * 300])
def test_garbage_signatures_are_bad_not_crashes(method: str, sig: str) -> None:
    """Non-hex or non-ASCII sig values fail cleanly (compare_digest would raise TypeError)."""
    assert _code({**SIGNED[method], "sig": sig}, method) == "bad_signature"


@pytest.mark.parametrize("method", ["", "sha384", "hmac", "none"])
def test_unsupported_method(method: str) -> None:
    """Only Vonage's five methods are known."""
    assert _code(SIGNED["sha256"], method) == "unsupported_method"


def test_method_names_are_case_insensitive() -> None:
    """Settings may say SHA256."""
    _verify(SIGNED["sha256"], " SHA256 ")


def test_naive_now_is_a_programming_error() -> None:
    """A naive clock would silently shift by the local offset: refuse it."""
    with pytest.raises(ValueError, match="aware"):
        _verify(SIGNED["sha256"], "sha256", now=SIGNED_AT.replace(tzinfo=None))


# --- nonces ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", SIGNATURE_METHODS)
def test_replayed_nonce_fails_the_second_time(method: str) -> None:
    """The same signed request passes once and is refused when replayed."""
    store = MemoryNonceStore(600)
    _verify(SIGNED[method], method, nonce_seen=store.seen_sync)
    assert _code(SIGNED[method], method, nonce_seen=store.seen_sync) == "replayed_nonce"


def test_forged_requests_do_not_use_up_nonces() -> None:
    """A nonce is recorded only after the signature and timestamp passed."""
    store = MemoryNonceStore(600)
    forged = {**SIGNED["sha256"], "text": "forged"}
    assert _code(forged, "sha256", nonce_seen=store.seen_sync) == "bad_signature"
    stale_now = SIGNED_AT + timedelta(hours=1)
    code = _code(SIGNED["sha256"], "sha256", now=stale_now, nonce_seen=store.seen_sync)
    assert code == "stale_timestamp"
    assert len(store) == 0
    _verify(SIGNED["sha256"], "sha256", nonce_seen=store.seen_sync)


def test_requests_without_nonce_skip_the_replay_check() -> None:
    """A signed request without nonce is verified on signature and time only."""
    calls: list[str] = []
    params = sign_params({"messageId": "X"}, SECRET, "sha256", int(SIGNED_AT.timestamp()))
    _verify(params, "sha256", nonce_seen=lambda n: calls.append(n) or True)
    assert calls == []


async def test_verify_signed_request_with_memory_store() -> None:
    """The async wrapper verifies, then refuses the replay through the store."""
    store = MemoryNonceStore(600)
    kwargs = {"secret": SECRET, "method": "md5hash", "now": SIGNED_AT, "store": store}
    await verify_signed_request(SIGNED["md5hash"], **kwargs)
    with pytest.raises(SignatureError) as caught:
        await verify_signed_request(SIGNED["md5hash"], **kwargs)
    assert caught.value.code == "replayed_nonce"
    with pytest.raises(SignatureError) as caught:
        await verify_signed_request({**SIGNED["md5hash"], "text": "x"}, **kwargs)
    assert caught.value.code == "bad_signature"
    # Without a store the replay check is skipped.
    await verify_signed_request(SIGNED["md5hash"], **{**kwargs, "store": None})


def test_memory_store_expires_and_stays_bounded() -> None:
    """Nonces are forgotten after the TTL, and the oldest go first past max_entries."""
    clock = [1000.0]
    store = MemoryNonceStore(10, max_entries=3, clock=lambda: clock[0])
    assert store.seen_sync("a") is False
    assert store.seen_sync("a") is True
    clock[0] += 10
    assert store.seen_sync("a") is False, "expired after the TTL"
    for nonce in "bcd":
        assert store.seen_sync(nonce) is False
    assert len(store) == 3
    assert store.seen_sync("a") is False, "the oldest was evicted"
    assert store.seen_sync("d") is True


# --- property: our signer and the verifier agree ---------------------------------------

_ALPHABET = "abcXYZ019-_ &=+%é😊\n"


def _random_params(rng: random.Random) -> dict[str, str]:
    keys = {"".join(rng.choices("abcdefghij-_", k=rng.randint(1, 8))) for _ in range(6)}
    keys.discard("sig")
    return {k: "".join(rng.choices(_ALPHABET, k=rng.randint(0, 20))) for k in keys}


@pytest.mark.parametrize("method", SIGNATURE_METHODS)
def test_random_params_signed_by_us_verify(method: str) -> None:
    """For random dicts (with &, =, unicode, empty values), sign then verify passes."""
    rng = random.Random(f"vonage-{method}")
    for _ in range(200):
        params = _random_params(rng)
        timestamp = rng.randint(1_600_000_000, 2_000_000_000)
        nonce = str(uuid.UUID(int=rng.getrandbits(128)))
        signed = sign_params(params, SECRET, method, timestamp, nonce)
        now = datetime.fromtimestamp(timestamp, tz=UTC)
        verify_signature(signed, secret=SECRET, method=method, now=now)
        assert {k: signed[k] for k in params} == params


@pytest.mark.parametrize("method", HMAC_METHODS)
def test_our_hmac_matches_the_sdk_signer(method: str) -> None:
    """Our own HMAC signer and the SDK's agree on random params (values as strings)."""
    rng = random.Random(f"sdk-{method}")
    auth = vonage.Auth(api_key="k", signature_secret=SECRET, signature_method=method)
    for _ in range(100):
        params = _random_params(rng)
        params["timestamp"] = str(rng.randint(1_600_000_000, 2_000_000_000))
        signed = sign_params(params, SECRET, method, int(params["timestamp"]))
        assert signed["sig"] == auth.sign_params(dict(params))


@pytest.mark.parametrize("method", HMAC_METHODS)
def test_our_check_decides_as_the_sdk_check(method: str) -> None:
    """We verify without the SDK; on signed, tampered, re-cased, timestamp-less and
    foreign-secret requests our verdict is the SDK's `check_signature`'s."""
    rng = random.Random(f"check-{method}")
    auth = vonage.Auth(api_key="k", signature_secret=SECRET, signature_method=method)
    for n in range(60):
        params = _random_params(rng)
        timestamp = rng.randint(1_600_000_000, 2_000_000_000)
        signed = sign_params(params, SECRET, method, timestamp, f"nonce-{n}")
        variants = [
            signed,
            {**signed, "sig": signed["sig"].upper()},
            {**signed, "nonce": "other"},
            {k: v for k, v in signed.items() if k != "timestamp"},
            {**signed, "timestamp": ""},
            sign_params(params, "another secret", method, timestamp, f"nonce-{n}"),
        ]
        now = datetime.fromtimestamp(timestamp, tz=UTC)
        for variant in variants:
            try:
                verify_signature(variant, secret=SECRET, method=method, now=now)
                ours = "ok"
            except SignatureError as exc:
                ours = exc.code
            sdk = auth.check_signature(dict(variant))
            assert ours in ("ok", "bad_signature"), (variant, ours)
            assert (ours == "ok") == sdk, (variant, ours)


def test_signature_base_replaces_separators_in_values() -> None:
    """`&` and `=` inside values become `_`; keys are sorted and sig left out."""
    base = signature_base({"text": "a&b=c", "api-key": "k", "sig": "x"})
    assert base == "&api-key=k&text=a_b_c"


# --- Redis store -----------------------------------------------------------------------


@pytest.fixture
async def redis_prefix() -> AsyncIterator[tuple[Redis, str]]:
    require_redis()
    redis = Redis.from_url(REDIS_URL)
    prefix = f"test:campaigns:nonce:{uuid.uuid4().hex}:"
    try:
        yield redis, prefix
    finally:
        keys = [key async for key in redis.scan_iter(match=prefix + "*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


@pytest.mark.redis
async def test_redis_store_records_once_with_ttl(redis_prefix) -> None:
    """SET NX EX: first sight records with the TTL, second sight is a replay."""
    redis, prefix = redis_prefix
    store = RedisNonceStore(redis, prefix=prefix, ttl_seconds=600)
    assert await store.seen("n1") is False
    assert await store.seen("n1") is True
    assert await store.seen("n2") is False
    ttl = await redis.ttl(prefix + "n1")
    assert 590 <= ttl <= 600


@pytest.mark.redis
async def test_redis_store_expires(redis_prefix) -> None:
    """Once the key has expired the nonce is new again."""
    redis, prefix = redis_prefix
    store = RedisNonceStore(redis, prefix=prefix, ttl_seconds=1)
    assert await store.seen("n") is False
    await redis.pexpire(prefix + "n", 5)  # shorten rather than sleep a whole second
    await asyncio.sleep(0.02)
    assert await store.seen("n") is False


@pytest.mark.redis
async def test_two_processes_share_the_replay_check(redis_prefix) -> None:
    """Two web processes (two clients, two stores): a request replayed to the other fails."""
    _, prefix = redis_prefix
    first_redis = Redis.from_url(REDIS_URL)
    second_redis = Redis.from_url(REDIS_URL)
    try:
        first = RedisNonceStore(first_redis, prefix=prefix)
        second = RedisNonceStore(second_redis, prefix=prefix)
        kwargs = {"secret": SECRET, "method": "sha512", "now": SIGNED_AT}
        await verify_signed_request(SIGNED["sha512"], store=first, **kwargs)
        with pytest.raises(SignatureError) as caught:
            await verify_signed_request(SIGNED["sha512"], store=second, **kwargs)
        assert caught.value.code == "replayed_nonce"
    finally:
        await first_redis.aclose()
        await second_redis.aclose()

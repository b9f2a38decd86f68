"""Verify (and, for tests and the emulator, produce) Vonage SMS API webhook signatures.

Vonage signs the flat request parameters: every key but `sig`, sorted, written as
`&key=value` with `&` and `=` inside values replaced by `_`. The legacy "md5hash" method
hashes that string with the secret appended; the others are HMACs keyed by the secret.

The HMACs are computed here as the SDK's `Auth.check_signature` computes them (same
bytes, same case-insensitive constant-time comparison, a missing or empty timestamp
filled with the current time and so never matching), without building its validated
objects for each request: about a tenth of the cost. Neither checks freshness nor nonce
reuse: that is done here too.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Protocol

__all__ = [
    "DEFAULT_MAX_AGE",
    "HMAC_METHODS",
    "SIGNATURE_METHODS",
    "NonceStore",
    "SignatureError",
    "sign_params",
    "signature_base",
    "verify_signature",
    "verify_signed_request",
]

HMAC_METHODS = ("md5", "sha1", "sha256", "sha512")
SIGNATURE_METHODS = ("md5hash", *HMAC_METHODS)
DEFAULT_MAX_AGE = timedelta(minutes=5)

_HEX = re.compile(r"[0-9a-fA-F]{1,256}")

_DETAILS = {
    "missing_signature": "signature absente",
    "bad_signature": "signature invalide",
    "stale_timestamp": "horodatage absent ou hors délai",
    "replayed_nonce": "requête rejouée",
    "unsupported_method": "méthode de signature non prise en charge",
}


class NonceStore(Protocol):
    """Where the nonces already accepted are kept (the service's stores fit this shape)."""

    async def seen(self, nonce: str) -> bool:
        """Record `nonce`; True when it was already recorded (a replay)."""
        ...


class SignatureError(ValueError):
    """A webhook request whose signature, freshness or nonce does not check out."""

    def __init__(self, code: str, detail: str | None = None) -> None:
        self.code = code
        self.detail = detail or _DETAILS.get(code, code)
        super().__init__(f"{code}: {self.detail}")


def _normalise_method(method: str) -> str:
    normalised = method.strip().lower()
    if normalised not in SIGNATURE_METHODS:
        raise SignatureError("unsupported_method")
    return normalised


def signature_base(params: Mapping[str, str]) -> str:
    """The string Vonage signs: sorted `&key=value` pairs, `sig` left out."""
    parts = []
    for key in sorted(params):
        if key == "sig":
            continue
        value = str(params[key]).replace("&", "_").replace("=", "_")
        parts.append(f"&{key}={value}")
    return "".join(parts)


def _compute(params: Mapping[str, str], secret: str, method: str) -> str:
    base = signature_base(params).encode("utf-8")
    if method == "md5hash":
        return hashlib.md5(base + secret.encode("utf-8")).hexdigest()
    hasher = _keyed(secret, method).copy()
    hasher.update(base)
    return hasher.hexdigest()


@lru_cache(maxsize=8)
def _keyed(secret: str, method: str) -> hmac.HMAC:
    """The HMAC with its key already set up, copied for each message (saves two blocks)."""
    return hmac.new(secret.encode("utf-8"), digestmod=getattr(hashlib, method))


def sign_params(
    params: Mapping[str, str],
    secret: str,
    method: str,
    timestamp: int,
    nonce: str | None = None,
) -> dict[str, str]:
    """Return a copy of params with timestamp, nonce and sig set as Vonage would sign them."""
    signed = {key: str(value) for key, value in params.items() if key != "sig"}
    signed["timestamp"] = str(int(timestamp))
    if nonce is not None:
        signed["nonce"] = nonce
    signed["sig"] = _compute(signed, secret, _normalise_method(method))
    return signed


def _signature_matches(params: Mapping[str, str], sig: str, secret: str, method: str) -> bool:
    """Constant-time, case-insensitive comparison with the signature we compute."""
    if method != "md5hash" and not params.get("timestamp"):
        # The SDK's check_signature fills a missing or empty timestamp with time() before
        # hashing, so that such a request never verifies: a bad signature, as there.
        return False
    return hmac.compare_digest(sig.lower(), _compute(params, secret, method))


def _check_freshness(params: Mapping[str, str], now: datetime, max_age: timedelta) -> None:
    raw = params.get("timestamp", "").strip()
    if not raw.isascii() or not raw.isdigit():
        raise SignatureError("stale_timestamp")
    skew = abs(now.timestamp() - int(raw))
    if skew > max_age.total_seconds():
        raise SignatureError("stale_timestamp")


def verify_signature(
    params: Mapping[str, str],
    *,
    secret: str,
    method: str,
    now: datetime,
    max_age: timedelta = DEFAULT_MAX_AGE,
    nonce_seen: Callable[[str], bool] | None = None,
) -> None:
    """Raise SignatureError unless params carry a valid, fresh, never-seen signature.

    `timestamp` must lie within max_age of `now`, in either direction. The nonce is
    recorded only once the signature and freshness passed, so forged requests cannot
    use up nonces; `nonce_seen(nonce)` returns True when it was already recorded.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    method = _normalise_method(method)
    sig = params.get("sig", "")
    if not sig.strip():
        raise SignatureError("missing_signature")
    # compare_digest raises TypeError on non-ASCII text: reject anything not hex first.
    if not _HEX.fullmatch(sig) or not _signature_matches(params, sig, secret, method):
        raise SignatureError("bad_signature")
    _check_freshness(params, now, max_age)
    nonce = params.get("nonce", "").strip()
    if nonce and nonce_seen is not None and nonce_seen(nonce):
        raise SignatureError("replayed_nonce")


async def verify_signed_request(
    params: Mapping[str, str],
    *,
    secret: str,
    method: str,
    now: datetime,
    store: NonceStore | None,
    max_age: timedelta = DEFAULT_MAX_AGE,
) -> None:
    """verify_signature, then record the nonce in an async store (Redis shared by processes).

    The store must keep nonces at least 2 × max_age, the span over which a timestamp is
    accepted.
    """
    verify_signature(params, secret=secret, method=method, now=now, max_age=max_age)
    nonce = params.get("nonce", "").strip()
    if nonce and store is not None and await store.seen(nonce):
        raise SignatureError("replayed_nonce")

"""Vonage's inbound SMS webhook: verify, store, queue and answer 2xx fast; the job does the rest."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from multidict import MultiDictProxy

from campaigns.nonce_store import MemoryNonceStore, NonceStore, RedisNonceStore
from campaigns.replies import enqueue_processing, receive_inbound
from campaigns.runtime import Runtime
from campaigns.web.api import ApiRouter
from campaigns.web.keys import RUNTIME
from campaigns.webhook_payloads import (
    PayloadError,
    decode_json_body,
    is_empty_probe,
    merge_request_params,
    parse_inbound,
)
from campaigns.webhook_signatures import SignatureError, verify_signature

router = ApiRouter("webhooks")
log = logging.getLogger(__name__)

INBOUND_PATH = "/webhooks/vonage/inbound"
NONCE_STORE = "nonce_store"  # key in Runtime.extras
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _error(status: int, code: str, detail: str) -> web.Response:
    return web.json_response({"error": code, "detail": detail}, status=status)


def nonce_store(runtime: Runtime) -> NonceStore:
    """The composition root's store if it set one, else Redis when configured, else memory."""
    store = getattr(runtime, "nonce_store", None) or runtime.extras.get(NONCE_STORE)
    if store is None:
        store = RedisNonceStore(runtime.redis) if runtime.redis is not None else MemoryNonceStore()
        runtime.extras[NONCE_STORE] = store
    return store


async def read_params(request: web.Request) -> dict[str, str]:
    """The flat Vonage parameters from the query string, a form or a JSON body."""
    form: MultiDictProxy | None = None
    body: object | None = None
    if request.method == "POST" and request.body_exists:
        content_type = request.content_type
        if content_type == "application/json" or content_type.endswith("+json"):
            body = decode_json_body(await request.read())
        elif content_type in _FORM_TYPES:
            form = await request.post()
        elif (await request.read()).strip():
            raise PayloadError("unsupported_content_type", "type de contenu non pris en charge")
    return merge_request_params(request.query, form, body)  # type: ignore[arg-type]


async def inbound(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    settings = runtime.settings
    try:
        params = await read_params(request)
    except PayloadError as exc:
        return _error(400, exc.code, exc.detail)
    if is_empty_probe(params):
        return web.json_response({"status": "ok"})
    nonce = ""
    if settings.vonage_signature_secret:
        try:
            verify_signature(
                params,
                secret=settings.vonage_signature_secret,
                method=settings.vonage_signature_method,
                now=runtime.clock(),
            )
        except SignatureError as exc:
            return _error(401, exc.code, exc.detail)
        nonce = params.get("nonce", "").strip()
    try:
        sms = parse_inbound(params)
    except PayloadError as exc:
        return _error(400, exc.code, exc.detail)
    received = await receive_inbound(sms, now=runtime.clock())
    # The nonce is recorded once the reply is safely stored: a request that failed before
    # (a 5xx makes Vonage retry) must not see its retry refused as a replay. Storing twice
    # is harmless (unique messageId), and so is queueing twice (one job id per reply): the
    # nonce check and the queueing go to Redis side by side.
    pending = [nonce_store(runtime).seen(nonce)] if nonce else []
    if received.reply_id is not None:
        pending.append(enqueue_processing(runtime, received.reply_id))
    results = await asyncio.gather(*pending)
    if nonce and results[0]:
        return _error(401, "replayed_nonce", SignatureError("replayed_nonce").detail)
    return web.Response(status=204)


router.route("GET", INBOUND_PATH, summary="SMS reçu (Vonage, GET)", roles=None)(inbound)
router.route("POST", INBOUND_PATH, summary="SMS reçu (Vonage, POST)", roles=None)(inbound)

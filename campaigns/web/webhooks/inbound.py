"""Vonage's inbound SMS webhook: verify, store, queue and answer 2xx fast; the job does the rest."""

from __future__ import annotations

import asyncio

from aiohttp import web

from campaigns.replies.intake import enqueue_processing, receive_inbound
from campaigns.web.errors import error_response
from campaigns.web.http import ApiRouter
from campaigns.web.keys import RUNTIME
from campaigns.web.webhooks.requests import NONCE_STORE, check_request, nonce_store, read_params
from providers.vonage.payloads import PayloadError, parse_inbound
from providers.vonage.signatures import SignatureError

router = ApiRouter("webhooks")

INBOUND_PATH = "/webhooks/vonage/inbound"

__all__ = ["INBOUND_PATH", "NONCE_STORE", "inbound", "nonce_store", "read_params", "router"]


async def inbound(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    checked = await check_request(request, runtime)
    if isinstance(checked, web.Response):
        return checked
    params, nonce = checked.params, checked.nonce
    try:
        sms = parse_inbound(params)
    except PayloadError as exc:
        return error_response(request, 400, exc.code, exc.detail)
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
        return error_response(
            request, 401, "replayed_nonce", SignatureError("replayed_nonce").detail
        )
    return web.Response(status=204)


router.route("GET", INBOUND_PATH, summary="SMS reçu (Vonage, GET)", roles=None)(inbound)
router.route("POST", INBOUND_PATH, summary="SMS reçu (Vonage, POST)", roles=None)(inbound)

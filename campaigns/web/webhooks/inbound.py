"""Vonage's inbound SMS webhook: verify, store (group-committed), queue and answer 2xx fast.

The job does the rest. A 204 means the request is stored; Vonage's identical retry of a
stored request gets a 204 again. A request Vonage signed whose content we cannot read is
stored raw for a person (see campaigns.replies.intake_batch.store_odd), never refused.
"""

from __future__ import annotations

from aiohttp import web

from campaigns.web.errors import error_response
from campaigns.web.keys import RUNTIME
from campaigns.web.webhooks.commit import Item, WebhookRouter, submit, unavailable
from campaigns.web.webhooks.requests import check_request, read_params
from providers.vonage.payloads import PayloadError, parse_inbound
from providers.vonage.signatures import SignatureError

router = WebhookRouter("webhooks")

INBOUND_PATH = "/webhooks/vonage/inbound"

__all__ = ["INBOUND_PATH", "inbound", "read_params", "router"]


async def inbound(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    checked = await check_request(request, runtime)
    if isinstance(checked, web.Response):
        return checked
    try:
        item = Item("inbound", parse_inbound(checked.params), checked.nonce, checked.fingerprint)
    except PayloadError as exc:
        if not checked.signed:
            return error_response(request, 400, exc.code, exc.detail)
        problem = {"code": exc.code, "detail": exc.detail, "field": exc.field}
        item = Item("odd", (checked.params, problem), checked.nonce, checked.fingerprint)
    try:
        stored = await submit(request, item)
    except Exception:
        return unavailable(request)
    if stored.replayed:
        return error_response(
            request, 401, "replayed_nonce", SignatureError("replayed_nonce").detail
        )
    return web.Response(status=204)


router.route("GET", INBOUND_PATH, summary="SMS reçu (Vonage, GET)", roles=None)(inbound)
router.route("POST", INBOUND_PATH, summary="SMS reçu (Vonage, POST)", roles=None)(inbound)

"""Vonage's delivery-receipt webhook: GET query, POST form or POST JSON, signed if configured.

A well-formed receipt always gets a fast 2xx, known or not, so that Vonage does not retry
for 24 hours; applying it twice changes nothing (see campaigns.dispatch.receipts).
"""

from __future__ import annotations

from aiohttp import web

from campaigns.dispatch import receipts
from campaigns.web.errors import error_response
from campaigns.web.http import ApiRouter
from campaigns.web.keys import RUNTIME
from campaigns.web.webhooks.requests import check_request, nonce_store
from providers.vonage.payloads import PayloadError, parse_receipt
from providers.vonage.signatures import SignatureError

router = ApiRouter("webhooks")

STATUS_PATH = "/webhooks/vonage/status"


async def delivery_receipt(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    checked = await check_request(request, runtime)
    if isinstance(checked, web.Response):
        return checked
    params, nonce = checked.params, checked.nonce
    try:
        receipt = parse_receipt(params)
    except PayloadError as exc:
        return error_response(request, 400, exc.code, exc.detail)
    result = await receipts.apply_receipt(receipt, runtime.clock())
    # The nonce is recorded only once the receipt is applied: if applying fails (a 5xx),
    # Vonage's retry carries the same nonce and must not be refused as a replay. Applying
    # a receipt twice changes nothing, so a true replay that gets this far is harmless.
    if nonce and await nonce_store(runtime).seen(nonce):
        return error_response(
            request, 401, "replayed_nonce", SignatureError("replayed_nonce").detail
        )
    return web.json_response({"status": result.outcome})


for _method in ("GET", "POST"):
    router.route(
        _method,
        STATUS_PATH,
        summary="Accusé de réception Vonage (SMS API)",
        roles=None,
        content_type="application/x-www-form-urlencoded",
    )(delivery_receipt)

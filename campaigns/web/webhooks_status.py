"""Vonage's delivery-receipt webhook: GET query, POST form or POST JSON, signed if configured.

A well-formed receipt always gets a fast 2xx, known or not, so that Vonage does not retry
for 24 hours; applying it twice changes nothing (see campaigns.receipts).
"""

from __future__ import annotations

import logging

from aiohttp import web

from campaigns import receipts
from campaigns.web.api import ApiRouter
from campaigns.web.keys import RUNTIME
from campaigns.webhook_payloads import (
    PayloadError,
    decode_json_body,
    is_empty_probe,
    merge_request_params,
    parse_receipt,
)
from campaigns.webhook_signatures import SignatureError, verify_signed_request

router = ApiRouter("webhooks")
log = logging.getLogger(__name__)

STATUS_PATH = "/webhooks/vonage/status"
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _error(status: int, code: str, detail: str) -> web.Response:
    return web.json_response({"error": code, "detail": detail}, status=status)


async def _params(request: web.Request) -> dict[str, str]:
    form = None
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


async def delivery_receipt(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    settings = runtime.settings
    try:
        params = await _params(request)
    except PayloadError as exc:
        return _error(400, exc.code, exc.detail)
    if is_empty_probe(params):
        return web.json_response({"status": "ok"})
    if settings.vonage_signature_secret:
        try:
            await verify_signed_request(
                params,
                secret=settings.vonage_signature_secret,
                method=settings.vonage_signature_method,
                now=runtime.clock(),
                store=runtime.nonce_store,
            )
        except SignatureError as exc:
            return _error(401, exc.code, exc.detail)
    try:
        receipt = parse_receipt(params)
    except PayloadError as exc:
        return _error(400, exc.code, exc.detail)
    result = await receipts.apply_receipt(receipt, runtime.clock())
    return web.json_response({"status": result.outcome})


for _method in ("GET", "POST"):
    router.route(
        _method,
        STATUS_PATH,
        summary="Accusé de réception Vonage (SMS API)",
        roles=None,
        content_type="application/x-www-form-urlencoded",
    )(delivery_receipt)

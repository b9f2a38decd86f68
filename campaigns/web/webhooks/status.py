"""Vonage's delivery-receipt webhook: GET query, POST form or POST JSON, signed if configured.

A well-formed receipt always gets a fast 2xx, known or not, so that Vonage does not retry
for 24 hours. The webhook only stores it (append-only, group-committed with the other
webhook requests of the moment); the `apply_receipts` job applies it to its message
(see campaigns.dispatch.receipts). Storing twice changes nothing, and Vonage's identical
retry of a stored receipt gets a 2xx again.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from campaigns.web.errors import error_response
from campaigns.web.keys import RUNTIME
from campaigns.web.webhooks.commit import Item, WebhookRouter, submit, unavailable
from campaigns.web.webhooks.requests import check_request
from providers.vonage.payloads import PayloadError, parse_receipt
from providers.vonage.signatures import SignatureError

router = WebhookRouter("webhooks")

STATUS_PATH = "/webhooks/vonage/status"

log = logging.getLogger(__name__)


async def delivery_receipt(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    checked = await check_request(request, runtime)
    if isinstance(checked, web.Response):
        return checked
    try:
        receipt = parse_receipt(checked.params)
    except PayloadError as exc:
        if not checked.signed:
            return error_response(request, 400, exc.code, exc.detail)
        # Vonage signed it: refusing would only make it retry for a day. No table holds
        # unreadable receipts yet; the log keeps it whole.
        log.warning("unreadable signed receipt (%s): %r", exc.code, checked.params)
        return web.json_response({"status": "unreadable"})
    try:
        stored = await submit(request, Item("receipt", receipt, checked.nonce, checked.fingerprint))
    except Exception:
        return unavailable(request)
    if stored.replayed:
        return error_response(
            request, 401, "replayed_nonce", SignatureError("replayed_nonce").detail
        )
    # What web.json_response would write, encoded once.
    return web.Response(text=_ANSWERS[stored.duplicate], content_type="application/json")


_ANSWERS = {False: json.dumps({"status": "stored"}), True: json.dumps({"status": "duplicate"})}


for _method in ("GET", "POST"):
    router.route(
        _method,
        STATUS_PATH,
        summary="Accusé de réception Vonage (SMS API)",
        roles=None,
        content_type="application/x-www-form-urlencoded",
    )(delivery_receipt)

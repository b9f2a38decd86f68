"""Turning domain errors and HTTP errors into the JSON error shape (or a French page)."""

from __future__ import annotations

import logging

from aiohttp import web

from campaigns.core.errors import DomainError
from campaigns.web.keys import Handler

log = logging.getLogger(__name__)


def _wants_json(request: web.Request) -> bool:
    return request.path.startswith(
        ("/api/", "/webhooks/", "/healthz")
    ) or "application/json" in request.headers.get("Accept", "")


def error_response(request: web.Request, status: int, code: str, detail: str) -> web.Response:
    """The one error answer: `{"error": CODE, "detail": TEXT}` for machines, a page for people."""
    if _wants_json(request):
        return web.json_response({"error": code, "detail": detail}, status=status)
    return web.Response(
        status=status,
        text=f"<!doctype html><html lang=fr><title>Erreur {status}</title><p>{_escape(detail)}</p>",
        content_type="text/html",
    )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DomainError as exc:
        return error_response(request, exc.status, exc.code, exc.detail)
    except web.HTTPException as exc:
        if exc.status < 400 or (exc.content_type != "text/plain" and exc.text):
            raise
        codes = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}
        return error_response(
            request, exc.status, codes.get(exc.status, "http_error"), exc.reason or "Erreur"
        )
    except Exception:
        # The traceback goes to the log; the client gets no internals.
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(request, 500, "internal", "Erreur interne du serveur")

"""Turning domain errors and HTTP errors into the JSON error shape (or a French page)."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from campaigns.core.errors import DomainError
from campaigns.dispatch.outages import database_unavailable
from campaigns.web.keys import Handler

log = logging.getLogger(__name__)

DATABASE_RETRY_AFTER = 5  # seconds: a PostgreSQL restart takes a few


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


# aiohttp's own errors, said in French.
_HTTP_ERRORS = {
    400: ("bad_request", "Requête mal formée"),
    404: ("not_found", "Page ou ressource introuvable"),
    405: ("method_not_allowed", "Méthode non autorisée pour cette adresse"),
    413: ("too_large", "Corps de la requête trop volumineux"),
    415: ("unsupported_media_type", "Type de contenu non pris en charge"),
}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DomainError as exc:
        return error_response(request, exc.status, exc.code, exc.detail)
    except web.HTTPException as exc:
        if exc.status < 400 or (exc.content_type != "text/plain" and exc.text):
            raise
        code, detail = _HTTP_ERRORS.get(exc.status, ("http_error", exc.reason or "Erreur"))
        response = error_response(request, exc.status, code, detail)
        # A 405 names the methods the resource does accept (RFC 9110).
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except RecursionError:
        # A reader without a depth limit met absurdly nested input (see http.loads_json).
        return error_response(request, 400, "too_deep", "Données trop imbriquées")
    except HttpProcessingError:
        # A malformed multipart part or header, met while the handler reads the body.
        return error_response(request, 400, "bad_request", "Requête mal formée")
    except Exception as exc:
        if database_unavailable(exc):
            # The database is away for a moment (a restart): try again later, not a bug.
            response = error_response(
                request,
                503,
                "unavailable",
                "Base de données momentanément indisponible : réessayez.",
            )
            response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER)
            return response
        # The traceback goes to the log; the client gets no internals.
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(request, 500, "internal", "Erreur interne du serveur")

"""The edge of every request: size and NUL checks before anyone is known, then who is calling
(a bearer token for the API, or a staff session from the pages)."""

from __future__ import annotations

from urllib.parse import unquote

from aiohttp import web

from campaigns import staff as staff_service
from campaigns.core.errors import Forbidden, Invalid
from campaigns.models import Staff
from campaigns.web.keys import SESSION_LOADER, STAFF, Handler
from campaigns.web.security import headers_middleware

KB = 1024
# Bodies are refused past these sizes before authentication: an anonymous client cannot
# make us read 50 MB. Uploads (register imports) keep the application's own cap.
TOKEN_BODY_LIMIT = 4 * KB
WEBHOOK_BODY_LIMIT = 64 * KB
DEFAULT_BODY_LIMIT = 1024 * KB
UPLOAD_PATHS = ("/api/v1/imports", "/imports")
WEBHOOK_PREFIX = "/webhooks/"


def body_limit(path: str, upload_limit: int) -> int:
    """The largest body accepted on ``path``."""
    if path.startswith("/api/v1/auth/"):
        return TOKEN_BODY_LIMIT
    if path.startswith(WEBHOOK_PREFIX):
        return WEBHOOK_BODY_LIMIT
    if path.startswith(UPLOAD_PATHS):
        return upload_limit
    return DEFAULT_BODY_LIMIT


@web.middleware
async def edge_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    # PostgreSQL refuses NUL in text: refused here, it is a 4xx rather than a 500 deep down.
    # Webhooks drop NUL characters themselves: Vonage must get its 2xx (see web.webhooks).
    path = request.path
    webhook = path.startswith(WEBHOOK_PREFIX)
    if "\x00" in path or (not webhook and "\x00" in unquote(request.query_string)):
        raise Invalid("Caractère nul refusé dans l'adresse", code="nul_character")
    limit = body_limit(path, request.client_max_size)
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    if limit != request.client_max_size:
        # A chunked body has no length to check: the clone stops reading at the limit.
        request = request.clone(client_max_size=limit)
    if webhook:
        return await _webhook(request)
    return await handler(request)


async def _webhook(request: web.Request) -> web.StreamResponse:
    """A webhook skips the middlewares that follow: Vonage's signature authorises it, not a
    session (no cookie to decrypt, no CSRF token, no staff to look up); its answers carry
    the same security headers."""
    request[STAFF] = None
    return await headers_middleware(request, request.match_info.handler)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    staff = await _resolve_staff(request)
    request[STAFF] = staff
    if staff is not None and staff.must_change_password and request.path.startswith("/api/"):
        # A one-time password opens the password page only, through the API as well.
        raise Forbidden(
            "Mot de passe à usage unique : choisissez le vôtre sur la page /mot-de-passe "
            "avant d'utiliser l'API",
            code="password_change_required",
        )
    return await handler(request)


async def _resolve_staff(request: web.Request) -> Staff | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return await staff_service.staff_for_token(header[7:].strip())
    # Pages keep the staff id and the account's session version in an encrypted cookie
    # (see campaigns.web.security); a raised version ends the session.
    loader = request.app.get(SESSION_LOADER)
    if loader is not None:
        opened = await loader(request)
        if opened is not None:
            staff_id, version = opened
            staff = await staff_service.active_staff(staff_id)
            if staff is not None and staff.session_version == version:
                return staff
    return None

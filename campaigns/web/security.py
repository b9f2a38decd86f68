"""Staff sessions in encrypted cookies, CSRF tokens and security headers; installs the throttle."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware
from aiohttp_session import Session, get_session, session_middleware
from aiohttp_session.cookie_storage import EncryptedCookieStorage

from campaigns.core.settings import Settings
from campaigns.models import Staff
from campaigns.web.keys import (
    LOGIN_THROTTLE,
    RUNTIME,
    SESSION_LOADER,
    SESSION_STAFF_KEY,
    SESSION_VERSION_KEY,
    Handler,
)
from campaigns.web.throttle import LoginThrottle, RedisLoginThrottle

CSRF_KEY = "csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
SESSION_MAX_AGE = 8 * 3600
SESSION_COOKIE = "campaigns_session"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; "
    "object-src 'none'"
)


def session_key(settings: Settings) -> bytes:
    """The cookie key, derived from the signing key (sessions are not readable without it)."""
    return hashlib.sha256(f"session:{settings.signing_key}".encode()).digest()


def session_middlewares(settings: Settings) -> list[Middleware]:
    storage = EncryptedCookieStorage(
        session_key(settings),
        cookie_name=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE,
        httponly=True,
        samesite="Lax",
        secure=settings.secure_cookies or settings.public_url.startswith("https://"),
    )
    return [session_middleware(storage), csrf_middleware, headers_middleware]


async def load_session_staff(request: web.Request) -> tuple[int, int] | None:
    """(staff id, session version) of the page session; None without one."""
    # Without the cookie there is no session to read: webhooks and bearer calls skip the
    # decryption, and their responses carry no cookie.
    if SESSION_COOKIE not in request.cookies:
        return None
    session = await get_session(request)
    staff_id = session.get(SESSION_STAFF_KEY)
    version = session.get(SESSION_VERSION_KEY)
    # A session without a version predates revocable sessions: it opens nothing.
    if not isinstance(staff_id, int) or not isinstance(version, int):
        return None
    return staff_id, version


def open_session(session: Session, staff: Staff) -> None:
    """Bind a (fresh) session to ``staff`` under the account's current session version."""
    session[SESSION_STAFF_KEY] = staff.id
    session[SESSION_VERSION_KEY] = staff.session_version


def install(app: web.Application) -> None:
    app[SESSION_LOADER] = load_session_staff
    runtime = app.get(RUNTIME)
    if runtime is not None and runtime.redis is not None:
        # Several web processes share one Redis: they must share the login counts too.
        app[LOGIN_THROTTLE] = RedisLoginThrottle(runtime.redis, runtime.settings.queue_name)
    else:
        app[LOGIN_THROTTLE] = LoginThrottle()


async def csrf_token(request: web.Request) -> str:
    session = await get_session(request)
    token = session.get(CSRF_KEY)
    if not token:
        token = secrets.token_urlsafe(32)
        session[CSRF_KEY] = token
    return str(token)


def _exempt(request: web.Request) -> bool:
    if request.path.startswith(("/webhooks/", "/desabonnement/")):
        # Authorised by Vonage's signature, or by the signed link itself, not by a session.
        return True
    # A bearer token is not sent by browsers on their own: no CSRF risk.
    if request.headers.get("Authorization", "").lower().startswith("bearer "):
        return True
    # An API call carrying no session cookie cannot ride on a staff member's session.
    return request.path.startswith("/api/") and SESSION_COOKIE not in request.cookies


def _origin_ok(request: web.Request) -> bool:
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if not origin:
        return True
    return urlsplit(origin).netloc == request.host


@web.middleware
async def csrf_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method in UNSAFE and not _exempt(request):
        if not _origin_ok(request):
            raise web.HTTPForbidden(reason="Origine de la requête refusée")
        session = await get_session(request)
        expected = session.get(CSRF_KEY)
        sent = request.headers.get(CSRF_HEADER)
        if sent is None and request.content_type in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            form = await request.post()
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
        if not expected or not sent or not hmac.compare_digest(str(expected), sent):
            raise web.HTTPForbidden(reason="Jeton CSRF manquant ou invalide : rechargez la page")
    return await handler(request)


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _secure(exc)
        raise
    _secure(response)
    return response


def _secure(response: web.StreamResponse) -> None:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")

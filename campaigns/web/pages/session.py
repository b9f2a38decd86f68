"""Logging in and out of the staff pages."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp_session import get_session, new_session

from campaigns import staff as staff_service
from campaigns.core import audit
from campaigns.core.errors import Invalid, Unauthorised
from campaigns.staff import CALLERS
from campaigns.web.keys import LOGIN_THROTTLE, STAFF
from campaigns.web.pages.base import PageRouter, current_page_staff, render
from campaigns.web.security import csrf_token, open_session

router = PageRouter()


# A plain absolute path of this site: no scheme, no host, no backslash (browsers read it as
# a slash), no control character (browsers drop tabs and newlines, so "/\t/evil" is "//evil").
_PLAIN_PATH = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*")


def _next_path(value: Any) -> str:
    """Where to go after login: a same-origin relative path, or the dashboard."""
    if not isinstance(value, str) or len(value) > 2000 or not _PLAIN_PATH.fullmatch(value):
        return "/"
    if "//" in value or urlsplit(value).netloc:
        return "/"
    return value


@router.public("GET", "/connexion")
async def login_form(request: web.Request) -> web.StreamResponse:
    if request.get(STAFF) is not None:
        raise web.HTTPFound("/")
    return await render(
        "login.html",
        request,
        {"error": None, "email": "", "suite": _next_path(request.query.get("suite"))},
    )


@router.public("POST", "/connexion")
async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    email = str(form.get("email", "")).strip()
    password = str(form.get("password", ""))
    suite = _next_path(form.get("suite"))
    throttle = request.app[LOGIN_THROTTLE]
    context = {"email": email, "suite": suite}
    if len(email) > 254 or len(password) > 1024:
        # argon2 would hash a megabyte as readily as a word: refused before any work.
        return await render(
            "login.html",
            request,
            {**context, "email": "", "error": "Adresse e-mail ou mot de passe incorrect."},
            status=401,
        )
    # Reserved before the password is hashed: concurrent attempts cannot all pass.
    if not await throttle.reserve(request.remote, email):
        return await render(
            "login.html",
            request,
            {**context, "error": "Trop de tentatives : réessayez dans quinze minutes."},
            status=429,
        )
    try:
        staff = await staff_service.authenticate(email, password)
    except Unauthorised:
        return await render(
            "login.html",
            request,
            {**context, "error": "Adresse e-mail ou mot de passe incorrect."},
            status=401,
        )
    await throttle.succeeded(request.remote, email)
    # A fresh session on login: a session fixed before authentication is not reused.
    session = await new_session(request)
    open_session(session, staff)
    await csrf_token(request)
    await audit.record(staff_service.actor_for(staff), "auth.login", "staff", staff.id)
    raise web.HTTPFound(suite)


# Public, not guarded: an account still on its one-time password must be able to leave.
@router.public("POST", "/deconnexion")
async def logout(request: web.Request) -> web.StreamResponse:
    staff = request.get(STAFF)
    if staff is not None:
        # The cookie may have been copied: ending the account's sessions ends the copies too.
        actor = staff_service.actor_for(staff)
        await staff_service.end_sessions(staff, actor=actor, reason="logout")
        await audit.record(actor, "auth.logout", "staff", staff.id)
        session = await get_session(request)
        session.invalidate()
    raise web.HTTPFound("/connexion")


PASSWORD_PATH = "/mot-de-passe"


# Every account changes its own password, volunteers included.
@router.page("GET", PASSWORD_PATH, CALLERS, "password.html")
async def password_form(request: web.Request) -> dict[str, Any]:
    return {"error": None}


@router.page("POST", PASSWORD_PATH, CALLERS, "password.html")
async def change_password(request: web.Request) -> web.StreamResponse | dict[str, Any]:
    staff = current_page_staff(request)
    form = await request.post()
    current = str(form.get("current", ""))
    new = str(form.get("new", ""))
    if not staff_service.verify_password(staff.password_hash, current):
        return {"error": "Le mot de passe actuel est incorrect."}
    if new != str(form.get("confirm", "")):
        return {"error": "Les deux nouveaux mots de passe ne sont pas identiques."}
    if new == current:
        return {"error": "Choisissez un mot de passe différent de l'actuel."}
    try:
        await staff_service.set_password(staff, new, actor=staff_service.actor_for(staff))
    except Invalid as exc:
        return {"error": exc.detail}
    # Every other session and token ended with the change; this one goes on, renewed.
    session = await new_session(request)
    open_session(session, staff)
    await csrf_token(request)
    raise web.HTTPFound("/")

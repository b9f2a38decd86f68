"""Who is calling: a bearer token for the API, or a staff session from the pages."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from campaigns import staff as staff_service
from campaigns.core.errors import Forbidden, TooManyAttempts, Unauthorised
from campaigns.models import Staff
from campaigns.web.http import ApiRouter, Handler, json_response, parse_body

router = ApiRouter("auth")
STAFF: web.RequestKey[Staff | None] = web.RequestKey("staff", Staff)
SESSION_STAFF_KEY = "staff_id"


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[STAFF] = await _resolve_staff(request)
    return await handler(request)


async def _resolve_staff(request: web.Request) -> Staff | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return await staff_service.staff_for_token(header[7:].strip())
    # Pages keep the staff id in an encrypted session cookie (see campaigns.web.pages).
    loader = request.app.get(SESSION_LOADER)
    if loader is not None:
        staff_id = await loader(request)
        if staff_id is not None:
            return await Staff.get_or_none(id=staff_id, active=True)
    return None


SESSION_LOADER: web.AppKey = web.AppKey("session_loader")


class TokenRequest(BaseModel):
    email: str
    password: str


class TokenResponse(BaseModel):
    token: str
    role: str
    expires_in: int


@router.route(
    "POST",
    "/api/v1/auth/token",
    summary="Obtenir un jeton d'accès",
    roles=None,
    body=TokenRequest,
    response=TokenResponse,
)
async def create_token(request: web.Request) -> web.Response:
    body = await parse_body(request, TokenRequest)
    from campaigns.web.security import LOGIN_THROTTLE

    throttle = request.app.get(LOGIN_THROTTLE)
    if throttle is not None and throttle.blocked(request.remote, body.email):
        raise TooManyAttempts("Trop de tentatives : réessayez dans quinze minutes")
    try:
        staff = await staff_service.authenticate(body.email, body.password)
    except Unauthorised:
        if throttle is not None:
            throttle.failed(request.remote, body.email)
        raise
    if throttle is not None:
        throttle.succeeded(request.remote, body.email)
    if staff.must_change_password:
        raise Forbidden(
            "Mot de passe à usage unique : choisissez le vôtre sur la page /mot-de-passe "
            "avant d'utiliser l'API",
            code="password_change_required",
        )
    token = await staff_service.issue_token(staff)
    return json_response(
        {
            "token": token,
            "role": staff.role.value,
            "expires_in": int(staff_service.TOKEN_LIFETIME.total_seconds()),
        }
    )

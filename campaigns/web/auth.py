"""The API's token route: e-mail and password in, a bearer token out (throttled like the pages)."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from campaigns import staff as staff_service
from campaigns.core.errors import Forbidden, TooManyAttempts, Unauthorised
from campaigns.web.http import ApiRouter, json_response, parse_body
from campaigns.web.keys import LOGIN_THROTTLE

router = ApiRouter("auth")


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

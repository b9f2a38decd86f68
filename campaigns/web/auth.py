"""The API's tokens: e-mail and password in, a bearer token out (throttled like the pages);
listing and revoking them."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, Field

from campaigns import staff as staff_service
from campaigns.core.errors import Forbidden, TooManyAttempts
from campaigns.models import ApiToken, Role
from campaigns.staff import ALL_ROLES
from campaigns.web.http import ApiRouter, Param, current_staff, int_param, json_response, parse_body
from campaigns.web.keys import LOGIN_THROTTLE
from campaigns.web.middleware import TOKEN_BODY_LIMIT

router = ApiRouter("auth")


class TokenRequest(BaseModel):
    email: str = Field(max_length=254)
    # argon2 hashes whatever it is given: a megabyte password would be a cheap way to burn CPU.
    password: str = Field(max_length=1024)
    label: str = Field(default="", max_length=100)


class TokenResponse(BaseModel):
    token: str
    role: str
    expires_in: int


class TokenOut(BaseModel):
    id: int
    staff_id: int
    label: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenList(BaseModel):
    items: list[TokenOut]


def _token_out(row: ApiToken) -> dict[str, object]:
    return TokenOut(
        id=row.id,
        staff_id=row.staff_id,  # type: ignore[attr-defined]
        label=row.label,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    ).model_dump(mode="json")


@router.route(
    "POST",
    "/api/v1/auth/token",
    summary="Obtenir un jeton d'accès",
    roles=None,
    body=TokenRequest,
    response=TokenResponse,
)
async def create_token(request: web.Request) -> web.Response:
    body = await parse_body(request, TokenRequest, limit=TOKEN_BODY_LIMIT)
    throttle = request.app.get(LOGIN_THROTTLE)
    # Reserved before the password is hashed: concurrent attempts cannot all pass.
    if throttle is not None and not await throttle.reserve(request.remote, body.email):
        raise TooManyAttempts("Trop de tentatives : réessayez dans quinze minutes")
    staff = await staff_service.authenticate(body.email, body.password)
    if throttle is not None:
        await throttle.succeeded(request.remote, body.email)
    if staff.must_change_password:
        raise Forbidden(
            "Mot de passe à usage unique : choisissez le vôtre sur la page /mot-de-passe "
            "avant d'utiliser l'API",
            code="password_change_required",
        )
    token = await staff_service.issue_token(staff, label=body.label)
    return json_response(
        {
            "token": token,
            "role": staff.role.value,
            "expires_in": int(staff_service.TOKEN_LIFETIME.total_seconds()),
        }
    )


@router.route(
    "GET",
    "/api/v1/auth/tokens",
    summary="Mes jetons en cours (un administrateur : ceux d'un compte avec staff_id)",
    roles=ALL_ROLES,
    response=TokenList,
    query=(Param("staff_id", "int"),),
)
async def list_tokens(request: web.Request) -> web.Response:
    staff = current_staff(request)
    owner_id = staff.id
    if request.query.get("staff_id"):
        owner_id = int(request.query["staff_id"])
        if owner_id != staff.id and staff.role is not Role.ADMIN:
            raise Forbidden("Seul un administrateur voit les jetons d'un autre compte")
    rows = await staff_service.list_tokens(owner_id)
    return json_response({"items": [_token_out(row) for row in rows]})


@router.route(
    "DELETE",
    "/api/v1/auth/tokens/{id}",
    summary="Révoquer un jeton (le sien ; un administrateur : celui de n'importe qui)",
    roles=ALL_ROLES,
    response=TokenOut,
)
async def revoke_token(request: web.Request) -> web.Response:
    row = await staff_service.revoke_token(current_staff(request), int_param(request, "id"))
    return json_response(_token_out(row))


__all__ = ["router"]

"""Declaring API routes once: the route, its roles and its OpenAPI description."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from campaigns.core.errors import Forbidden, Invalid, Unauthorised
from campaigns.models import Role, Staff
from campaigns.staff import ALL_ROLES
from campaigns.web.keys import STAFF, Handler

T = TypeVar("T", bound=BaseModel)


@dataclass
class RouteSpec:
    method: str
    path: str
    handler: Handler
    summary: str
    roles: tuple[Role, ...] | None  # None: public (authenticated some other way)
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    tag: str = "api"
    query: tuple[str, ...] = ()
    content_type: str = "application/json"


@dataclass
class ApiRouter:
    tag: str
    routes: list[RouteSpec] = field(default_factory=list)

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        roles: tuple[Role, ...] | None = ALL_ROLES,
        body: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        query: tuple[str, ...] = (),
        content_type: str = "application/json",
    ) -> Callable[[Handler], Handler]:
        def decorate(handler: Handler) -> Handler:
            guarded = require_roles(roles)(handler) if roles is not None else handler
            self.routes.append(
                RouteSpec(
                    method.upper(),
                    path,
                    guarded,
                    summary,
                    roles,
                    body,
                    response,
                    self.tag,
                    query,
                    content_type,
                )
            )
            return guarded

        return decorate

    def add_to(self, app: web.Application) -> None:
        for spec in self.routes:
            app.router.add_route(spec.method, spec.path, spec.handler)


def current_staff(request: web.Request) -> Staff:
    staff: Staff | None = request.get(STAFF)
    if staff is None:
        raise Unauthorised("Authentification requise")
    return staff


def require_roles(roles: tuple[Role, ...]) -> Callable[[Handler], Handler]:
    def decorate(handler: Handler) -> Handler:
        @wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            staff = current_staff(request)
            if staff.role not in roles:
                raise Forbidden("Votre rôle ne permet pas cette action")
            return await handler(request)

        guarded.allowed_roles = roles  # type: ignore[attr-defined]
        return guarded

    return decorate


async def parse_body(request: web.Request, model: type[T]) -> T:
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise Invalid("Le corps de la requête n'est pas du JSON valide", code="bad_json") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'corps'}: {err['msg']}"
            for err in exc.errors()
        )
        raise Invalid(problems, code="validation") from None


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


def _dumps(data: Any) -> str:
    return json.dumps(data, default=str, ensure_ascii=False)


def int_param(request: web.Request, name: str) -> int:
    try:
        return int(request.match_info[name])
    except ValueError:
        raise Invalid(f"Identifiant invalide : {name}", code="bad_id") from None

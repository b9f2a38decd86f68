"""Declaring API routes once: the route, its roles, its parameters and its OpenAPI description.

Every parameter a route declares is checked here, before the handler runs, with the same
description the OpenAPI document publishes: what the document promises is what is accepted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from campaigns.core.errors import Forbidden, Invalid, Unauthorised
from campaigns.models import Role, Staff
from campaigns.staff import ALL_ROLES, QUEUES
from campaigns.web.keys import STAFF, Handler

T = TypeVar("T", bound=BaseModel)

# Ids are 32-bit INTEGER columns: a larger number can name no row, and PostgreSQL would
# refuse to compare it (a 500, not a 404).
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
# Deeper JSON is never legitimate here, and deep nesting costs recursion in the parsers.
MAX_JSON_DEPTH = 32
JSON_BODY_LIMIT = 1024 * 1024
_TRUE = ("1", "true", "oui", "yes")
_FALSE = ("0", "false", "non", "no")


@dataclass(frozen=True)
class Param:
    """A query or path parameter: its type and bounds, checked and published alike."""

    name: str
    kind: Literal["int", "str", "bool"] = "str"
    enum: tuple[str, ...] | None = None
    max_length: int = 200
    minimum: int = 1
    maximum: int = INT32_MAX
    # Several enum values separated by commas (e.g. `status=open,claimed`).
    many: bool = False

    def schema(self, *, in_path: bool = False) -> dict[str, Any]:
        # An empty query value means "not given"; a path segment is never empty.
        empty = () if in_path else ("",)
        if self.kind == "int":
            return {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}
        if self.kind == "bool":
            return {"type": "string", "enum": [*empty, *_TRUE, *_FALSE]}
        if self.enum is not None and not self.many:
            return {"type": "string", "enum": [*empty, *self.enum]}
        schema: dict[str, Any] = {"type": "string", "maxLength": self.max_length}
        if in_path:
            schema["minLength"] = 1
        if self.enum is not None:
            alternatives = "|".join(re.escape(v) for v in self.enum)
            schema["pattern"] = rf"^(({alternatives})(,({alternatives}))*)?$"
        return schema

    def check(self, raw: str) -> None:
        if "\x00" in raw:
            raise Invalid(f"Paramètre {self.name} : caractère nul refusé", code="bad_query")
        if self.kind == "int":
            if not re.fullmatch(r"[+-]?\d{1,19}", raw.strip()) or not (
                self.minimum <= int(raw) <= self.maximum
            ):
                raise Invalid(
                    f"Paramètre {self.name} : nombre entier entre {self.minimum} et "
                    f"{self.maximum} attendu",
                    code="bad_query",
                )
            return
        value = raw.strip().lower() if self.kind == "bool" or self.enum else raw
        if self.kind == "bool":
            if value not in ("", *_TRUE, *_FALSE):
                raise Invalid(f"Paramètre {self.name} : attendu true ou false", code="bad_query")
            return
        if len(raw) > self.max_length:
            raise Invalid(
                f"Paramètre {self.name} : {self.max_length} caractères au plus", code="bad_query"
            )
        if self.enum is not None:
            values = [v.strip() for v in value.split(",")] if self.many else [value]
            unknown = [v for v in values if v and v not in self.enum]
            if unknown:
                raise Invalid(
                    f"Paramètre {self.name} : valeur inconnue, attendu {', '.join(self.enum)}",
                    code="bad_query",
                )


# What a parameter name means wherever a route does not say otherwise.
COMMON_PARAMS: dict[str, Param] = {
    "id": Param("id", "int"),
    "campaign_id": Param("campaign_id", "int"),
    "page": Param("page", "int", maximum=1_000_000),
    "page_size": Param("page_size", "int", maximum=200),
    "limit": Param("limit", "int", maximum=200),
    "queue": Param("queue", enum=QUEUES),
    "channel": Param("channel", enum=("sms", "email", "appel")),
    "assignee": Param("assignee", enum=("me", "none", "all")),
    "overdue": Param("overdue", "bool"),
    "unread": Param("unread", "str", enum=("all", "tous", *_TRUE, *_FALSE)),
    "segment": Param("segment", max_length=40),
    "q": Param("q", max_length=200),
    "status": Param("status", max_length=100),
    "label": Param("label", max_length=12),
    "token": Param("token", max_length=500),
}


def param(spec: str | Param) -> Param:
    if isinstance(spec, Param):
        return spec
    return COMMON_PARAMS.get(spec, Param(spec))


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
    query: tuple[str | Param, ...] = ()
    content_type: str = "application/json"
    # A success without a body, and what it means (204 "nothing to take").
    no_content: str | None = None

    @property
    def query_params(self) -> list[Param]:
        return [param(q) for q in self.query]

    @property
    def path_params(self) -> list[Param]:
        return [param(name) for name in re.findall(r"{(\w+)}", self.path)]


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
        query: tuple[str | Param, ...] = (),
        content_type: str = "application/json",
        no_content: str | None = None,
    ) -> Callable[[Handler], Handler]:
        def decorate(handler: Handler) -> Handler:
            spec = RouteSpec(
                method.upper(),
                path,
                handler,
                summary,
                roles,
                body,
                response,
                self.tag,
                query,
                content_type,
                no_content,
            )
            checked = _checking_params(spec, handler)
            guarded = require_roles(roles)(checked) if roles is not None else checked
            spec.handler = guarded
            self.routes.append(spec)
            return guarded

        return decorate

    def add_to(self, app: web.Application) -> None:
        for spec in self.routes:
            app.router.add_route(spec.method, spec.path, spec.handler)


def _checking_params(spec: RouteSpec, handler: Handler) -> Handler:
    path_params = spec.path_params
    query_params = spec.query_params

    @wraps(handler)
    async def checked(request: web.Request) -> web.StreamResponse:
        for p in path_params:
            p.check(request.match_info.get(p.name, ""))
        for p in query_params:
            for raw in request.query.getall(p.name, []):
                p.check(raw)
        return await handler(request)

    return checked


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


async def read_capped(request: web.Request, limit: int) -> bytes:
    """The body, refused with a 413 as soon as it exceeds ``limit`` bytes (even when chunked)."""
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    if limit >= request.client_max_size:
        # The request enforces its own, smaller cap (see middleware.edge_middleware), and
        # read() keeps the body for a second reader.
        return await request.read()
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(64 * 1024)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)
        chunks.append(chunk)


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


def json_depth(raw: bytes) -> int:
    """How deeply ``raw`` nests arrays and objects, strings ignored; cheap enough to run first."""
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub(b'""', raw)):
        if match.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def require_shallow_json(raw: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> bytes:
    """``raw`` unchanged, or a French 422 when it nests deeper than ``max_depth``.

    For readers with their own JSON decoding (the webhooks, before their signature check).
    """
    if json_depth(raw) > max_depth:
        raise Invalid(f"JSON trop imbriqué : {max_depth} niveaux au plus", code="json_too_deep")
    return raw


def loads_json(raw: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """JSON text to Python, refusing deep nesting and NUL characters with a French 4xx.

    Webhooks call it on the raw body before checking its signature: nothing deep is parsed
    for anyone.
    """
    require_shallow_json(raw, max_depth=max_depth)
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise Invalid("Le corps de la requête n'est pas du JSON valide", code="bad_json") from None
    if _has_nul(data):
        raise Invalid("Caractère nul refusé dans le corps de la requête", code="nul_character")
    return data


def _has_nul(data: Any) -> bool:
    if isinstance(data, str):
        return "\x00" in data
    if isinstance(data, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in data.items())
    if isinstance(data, list):
        return any(_has_nul(v) for v in data)
    return False


async def parse_body(request: web.Request, model: type[T], *, limit: int = JSON_BODY_LIMIT) -> T:
    data = loads_json(await read_capped(request, limit))
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'corps'}: {err['msg']}"
            for err in exc.errors()
        )
        raise Invalid(problems, code="validation") from None
    check_integers(parsed)
    return parsed


def is_id_name(name: str) -> bool:
    return name in ("id", "ids") or name.endswith(("_id", "_ids"))


def check_integers(value: Any, name: str = "corps") -> None:
    """Ids within the 32-bit columns they name, every other integer within 64 bits.

    Out of range, PostgreSQL refuses the query: a French 422 here rather than a 500 there.
    """
    if isinstance(value, BaseModel):
        for field_name in type(value).model_fields:
            check_integers(getattr(value, field_name), field_name)
    elif isinstance(value, list | tuple | set):
        for item in value:
            check_integers(item, name)
    elif isinstance(value, dict):
        for item in value.values():
            check_integers(item, name)
    elif isinstance(value, int) and not isinstance(value, bool):
        low, high = (1, INT32_MAX) if is_id_name(name) else (-INT64_MAX - 1, INT64_MAX)
        if not low <= value <= high:
            raise Invalid(f"{name} : nombre hors limites ({low} à {high})", code="validation")


def bound_integers(schema: Any, name: str = "") -> None:
    """Publish the bounds check_integers enforces in a JSON schema (the OpenAPI document)."""
    if isinstance(schema, dict):
        if schema.get("type") == "integer":
            low, high = (1, INT32_MAX) if is_id_name(name) else (-INT64_MAX - 1, INT64_MAX)
            schema.setdefault("minimum", low)
            schema.setdefault("maximum", high)
        for key, sub in schema.items():
            if key == "properties" and isinstance(sub, dict):
                for prop, prop_schema in sub.items():
                    bound_integers(prop_schema, prop)
            else:
                bound_integers(sub, name)
    elif isinstance(schema, list):
        for sub in schema:
            bound_integers(sub, name)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


def _dumps(data: Any) -> str:
    return json.dumps(data, default=str, ensure_ascii=False)


def int_param(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    if not re.fullmatch(r"\d{1,10}", raw) or not 1 <= int(raw) <= INT32_MAX:
        raise Invalid(f"Identifiant invalide : {name}", code="bad_id")
    return int(raw)

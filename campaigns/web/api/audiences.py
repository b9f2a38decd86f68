"""HTTP routes for audiences: saved filters, their count, members and a live count."""

from __future__ import annotations

from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, Field

from campaigns.registry import audiences
from campaigns.registry.audiences import AudienceFilter
from campaigns.staff import MANAGERS, actor_for
from campaigns.web.api.people import PeoplePage, query_int
from campaigns.web.http import (
    JSON_BODY_LIMIT,
    ApiRouter,
    current_staff,
    int_param,
    json_response,
    loads_json,
    parse_body,
    read_capped,
)

router = ApiRouter("audiences")
T = TypeVar("T", bound=BaseModel)


class AudienceCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    filter: AudienceFilter = Field(default_factory=AudienceFilter)


class CountRequest(BaseModel):
    filter: AudienceFilter = Field(default_factory=AudienceFilter)


class CountOut(BaseModel):
    count: int


async def parse_json(request: web.Request, model: type[T]) -> T:
    """The body, with the filter checked first so that its errors read in French."""
    data: Any = loads_json(await read_capped(request, JSON_BODY_LIMIT))
    if isinstance(data, dict) and "filter" in data:
        audiences.parse_filter(data["filter"])
    return await parse_body(request, model)


class AudienceCreated(BaseModel):
    id: int
    count: int


class AudienceOut(BaseModel):
    id: int
    name: str
    filter: dict[str, Any]
    created_by_id: int | None
    created_at: str | None
    count: int | None = None


class AudienceList(BaseModel):
    items: list[AudienceOut]


@router.route(
    "POST",
    "/api/v1/audiences",
    summary="Enregistrer une audience (filtre nommé) ; renvoie son effectif",
    roles=MANAGERS,
    body=AudienceCreate,
    response=AudienceCreated,
)
async def create_audience(request: web.Request) -> web.Response:
    body = await parse_json(request, AudienceCreate)
    audience, size = await audiences.create_audience(
        body.name, body.filter, actor=actor_for(current_staff(request))
    )
    return json_response({"id": audience.id, "count": size}, status=201)


@router.route(
    "POST",
    "/api/v1/audiences/count",
    summary="Compter les personnes d'un filtre (compteur en direct)",
    roles=MANAGERS,
    body=CountRequest,
    response=CountOut,
)
async def count_filter(request: web.Request) -> web.Response:
    body = await parse_json(request, CountRequest)
    return json_response({"count": await audiences.count(body.filter)})


@router.route(
    "GET",
    "/api/v1/audiences",
    summary="Lister les audiences enregistrées",
    roles=MANAGERS,
    response=AudienceList,
)
async def list_audiences(request: web.Request) -> web.Response:
    items = [audiences.describe(a) for a in await audiences.list_audiences()]
    return json_response({"items": items})


@router.route(
    "GET",
    "/api/v1/audiences/{id}",
    summary="Consulter une audience et son effectif actuel",
    roles=MANAGERS,
    response=AudienceOut,
)
async def get_audience(request: web.Request) -> web.Response:
    audience = await audiences.get_audience(int_param(request, "id"))
    size = await audiences.count(audience.criteria)
    return json_response(audiences.describe(audience, size))


@router.route(
    "GET",
    "/api/v1/audiences/{id}/members",
    summary="Les personnes d'une audience, page par page",
    roles=MANAGERS,
    response=PeoplePage,
    query=("page", "page_size"),
)
async def audience_members(request: web.Request) -> web.Response:
    audience = await audiences.get_audience(int_param(request, "id"))
    result = await audiences.members(
        audience.criteria,
        page=query_int(request, "page", 1),
        page_size=query_int(request, "page_size", 50),
    )
    return json_response(result)

"""HTTP routes for people: search, view, rectify, erase and export one person's data."""

from __future__ import annotations

from datetime import date

from aiohttp import web
from pydantic import BaseModel

from campaigns.core.errors import Forbidden, Invalid
from campaigns.registry import people
from campaigns.registry.people import PersonPatch
from campaigns.staff import ALL_ROLES, MANAGERS, actor_for
from campaigns.web.http import (
    ApiRouter,
    current_staff,
    int_param,
    json_response,
    parse_body,
)

router = ApiRouter("people")


class PersonSummary(BaseModel):
    id: int
    external_ref: str | None
    civility: str | None
    first_name: str
    last_name: str
    birth_date: date | None
    district: str | None
    has_mobile: bool
    has_email: bool


class PeoplePage(BaseModel):
    items: list[PersonSummary]
    total: int
    page: int
    page_size: int


class MembershipOut(BaseModel):
    segment: str
    source: str
    started_on: date | None
    category: str | None
    registered_by: str | None
    acknowledged_on: date | None
    next_review_on: date | None
    emergency_contact: str | None
    home_care_service: str | None


class PersonOut(BaseModel):
    id: int
    external_ref: str | None
    civility: str | None
    first_name: str
    last_name: str
    birth_date: date | None
    mobile: str | None
    landline: str | None
    email: str | None
    preferred_channel: str
    address: str | None
    district: str | None
    referent_email: str | None
    last_contacted_at: str | None
    created_at: str | None
    updated_at: str | None


class PersonView(PersonOut):
    memberships: list[MembershipOut]
    opt_outs: dict[str, bool]
    sms_reachable: bool


class ErasureOut(BaseModel):
    deleted: bool
    memberships: int
    messages_detached: int
    replies_detached: int
    escalations_deleted: int


def query_int(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise Invalid(
            f"Paramètre {name} : un nombre entier est attendu", code="bad_query"
        ) from None


async def _check_access(request: web.Request, person_id: int) -> None:
    staff = current_staff(request)
    if not await people.can_view_person(staff, person_id):
        raise Forbidden("Cette personne n'est dans aucune de vos files")


@router.route(
    "GET",
    "/api/v1/people",
    summary="Rechercher des personnes (segment, nom, n° de dossier, téléphone)",
    roles=MANAGERS,
    response=PeoplePage,
    query=("segment", "q", "page", "page_size"),
)
async def list_people(request: web.Request) -> web.Response:
    result = await people.search(
        segment=request.query.get("segment") or None,
        q=request.query.get("q") or None,
        page=query_int(request, "page", 1),
        page_size=query_int(request, "page_size", 50),
        actor=actor_for(current_staff(request)),
    )
    return json_response(result)


@router.route(
    "GET",
    "/api/v1/people/{id}",
    summary="Consulter une personne (accès journalisé)",
    roles=ALL_ROLES,
    response=PersonView,
)
async def get_person(request: web.Request) -> web.Response:
    person_id = int_param(request, "id")
    await _check_access(request, person_id)
    actor = actor_for(current_staff(request))
    return json_response(await people.view(person_id, actor=actor))


@router.route(
    "PATCH",
    "/api/v1/people/{id}",
    summary="Rectifier une personne (champs modifiés journalisés)",
    roles=ALL_ROLES,
    body=PersonPatch,
    response=PersonOut,
)
async def patch_person(request: web.Request) -> web.Response:
    person_id = int_param(request, "id")
    await _check_access(request, person_id)
    patch = await parse_body(request, PersonPatch)
    actor = actor_for(current_staff(request))
    return json_response(await people.edit(person_id, patch, actor=actor))


@router.route(
    "DELETE",
    "/api/v1/people/{id}",
    summary="Effacer une personne (suppression réelle ; les oppositions restent)",
    roles=MANAGERS,
    response=ErasureOut,
)
async def delete_person(request: web.Request) -> web.Response:
    person_id = int_param(request, "id")
    counts = await people.erase(person_id, actor=actor_for(current_staff(request)))
    return json_response({"deleted": True, **counts})


@router.route(
    "GET",
    "/api/v1/people/{id}/export",
    summary="Exporter tout ce qui est détenu sur une personne (droit d'accès)",
    roles=MANAGERS,
)
async def export_person(request: web.Request) -> web.Response:
    person_id = int_param(request, "id")
    document = await people.export(person_id, actor=actor_for(current_staff(request)))
    response = json_response(document)
    response.headers["Content-Disposition"] = f'attachment; filename="personne-{person_id}.json"'
    return response

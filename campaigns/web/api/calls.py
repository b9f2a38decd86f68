"""HTTP routes of call campaigns: tasks, the next call, outcomes, callers and coverage."""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field, ValidationError

from campaigns.calls import callers as calls_callers
from campaigns.calls import queries
from campaigns.calls.outcomes import OutcomeRequest
from campaigns.core.errors import Invalid
from campaigns.core.runtime import Runtime
from campaigns.models import CallStatus
from campaigns.staff import CALLERS, MANAGERS, actor_for
from campaigns.web.http import (
    ApiRouter,
    Param,
    check_integers,
    current_staff,
    int_param,
    json_response,
    loads_json,
    parse_body,
    read_capped,
)
from campaigns.web.keys import RUNTIME

router = ApiRouter("appels")
CALL_STATUS = Param("status", enum=tuple(s.value for s in CallStatus))
PER_PAGE = 50


class CallTaskOut(BaseModel):
    id: int
    person_id: int | None
    cycle: int
    status: str
    attempts: int
    assignee: dict[str, Any] | None
    due_at: str
    outcome: str | None
    orientation: str | None
    origin: str


class CallList(BaseModel):
    items: list[CallTaskOut]
    total: int
    page: int


class CallSheet(CallTaskOut):
    campaign: dict[str, Any]
    person: dict[str, Any] | None
    phones: list[dict[str, str]]
    script: str
    history: list[dict[str, Any]]
    last_contact: dict[str, Any] | None
    max_attempts: int
    outcomes: dict[str, str]
    orientations: dict[str, str]


class NextIn(BaseModel):
    campaign_id: int | None = Field(default=None, ge=1)


class OutcomeIn(BaseModel):
    outcome: Literal[
        "joint_rien", "joint_besoin", "pas_de_reponse", "messagerie", "faux_numero", "refus_appels"
    ]
    orientation: (
        Literal["aide_domicile", "portage_repas", "courses", "soutien_psychologique",
                "partenaire_sante"] | None
    ) = None  # fmt: skip
    queue: Literal["urgence", "rappel", "triage", "suivi"] | None = None
    note: str | None = Field(default=None, max_length=2000)


class CallersIn(BaseModel):
    emails: list[str] = Field(max_length=500)


class CallersOut(BaseModel):
    callers: list[dict[str, Any]]


class CoverageOut(BaseModel):
    campaign_id: int
    cycle: int
    cycle_started_at: str | None
    eligible: int
    reached: int
    unreached: int
    injoignables: int
    share_reached: float
    by_district: dict[str, dict[str, Any]]
    by_caller: dict[str, dict[str, Any]]
    unreached_people: list[dict[str, Any]]
    overdue: list[dict[str, Any]]
    injoignable_people: list[dict[str, Any]]


def _runtime(request: web.Request) -> Runtime:
    return request.app[RUNTIME]


@router.route(
    "GET",
    "/api/v1/campaigns/{id}/calls",
    summary="Les appels d'une campagne d'appels (cycle en cours d'abord)",
    roles=MANAGERS,
    response=CallList,
    query=(CALL_STATUS, "page"),
)
async def list_calls(request: web.Request) -> web.Response:
    page = max(1, int(request.query.get("page") or 1))
    items, total = await queries.list_tasks(
        int_param(request, "id"),
        status=request.query.get("status") or None,
        offset=(page - 1) * PER_PAGE,
        limit=PER_PAGE,
    )
    return json_response({"items": items, "total": total, "page": page})


@router.route(
    "POST",
    "/api/v1/calls/next",
    summary="Prendre l'appel suivant (204 quand il n'y en a pas)",
    roles=CALLERS,
    body=NextIn,
    response=CallSheet,
    no_content="Aucun appel à prendre pour le moment",
)
async def next_call(request: web.Request) -> web.Response:
    body = await _next_body(request)
    runtime = _runtime(request)
    sheet = await queries.take_next(current_staff(request), runtime, body.campaign_id)
    if sheet is None:
        return web.Response(status=204)
    return json_response(sheet)


async def _next_body(request: web.Request) -> NextIn:
    # "Next" is pressed with or without a campaign: an empty body means any campaign.
    raw = await read_capped(request, 4096) if request.can_read_body else b""
    if not raw.strip():
        return NextIn()
    try:
        body = NextIn.model_validate(loads_json(raw))
    except ValidationError as exc:
        raise Invalid(f"campaign_id : {exc.errors()[0]['msg']}", code="validation") from None
    check_integers(body)
    return body


@router.route(
    "GET",
    "/api/v1/calls/{id}",
    summary="La fiche d'appel (nom, numéros, script, notes de la campagne) ; consultation tracée",
    roles=CALLERS,
    response=CallSheet,
)
async def show_call(request: web.Request) -> web.Response:
    runtime = _runtime(request)
    sheet = await queries.sheet(current_staff(request), int_param(request, "id"), runtime)
    return json_response(sheet)


@router.route(
    "POST",
    "/api/v1/calls/{id}/outcome",
    summary="Noter l'issue d'un appel (et l'orientation d'un besoin)",
    roles=CALLERS,
    body=OutcomeIn,
    response=CallTaskOut,
)
async def call_outcome(request: web.Request) -> web.Response:
    body = await parse_body(request, OutcomeIn)
    task = await queries.outcome(
        current_staff(request),
        int_param(request, "id"),
        OutcomeRequest(body.outcome, body.orientation, body.queue, body.note),
        _runtime(request),
    )
    return json_response(task)


@router.route(
    "POST",
    "/api/v1/calls/{id}/release",
    summary="Reposer un appel pris (il reste à faire)",
    roles=CALLERS,
    response=CallTaskOut,
)
async def release_call(request: web.Request) -> web.Response:
    task = await queries.release(
        current_staff(request), int_param(request, "id"), _runtime(request)
    )
    return json_response(task)


@router.route(
    "GET",
    "/api/v1/campaigns/{id}/callers",
    summary="Les appelant·es d'une campagne d'appels",
    roles=MANAGERS,
    response=CallersOut,
)
async def get_callers(request: web.Request) -> web.Response:
    await calls_callers.call_campaign(int_param(request, "id"))
    return json_response({"callers": await calls_callers.callers_of(int_param(request, "id"))})


@router.route(
    "PUT",
    "/api/v1/campaigns/{id}/callers",
    summary="Nommer les appelant·es (bénévoles compris) qui prennent les appels de la campagne",
    roles=MANAGERS,
    body=CallersIn,
    response=CallersOut,
)
async def put_callers(request: web.Request) -> web.Response:
    body = await parse_body(request, CallersIn)
    staff = current_staff(request)
    callers = await calls_callers.set_callers(
        int_param(request, "id"), body.emails, actor=actor_for(staff)
    )
    return json_response({"callers": callers})


@router.route(
    "GET",
    "/api/v1/campaigns/{id}/coverage",
    summary="Couverture du cycle : joints, non joints, injoignables, par quartier et appelant·e",
    roles=MANAGERS,
    response=CoverageOut,
)
async def get_coverage(request: web.Request) -> web.Response:
    runtime = _runtime(request)
    data = await queries.coverage(current_staff(request), int_param(request, "id"), runtime)
    return json_response(data)

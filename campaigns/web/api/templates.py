"""HTTP routes for message templates: create, edit (a new version), list, read, preview."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field

from campaigns.messages import template_store as store
from campaigns.registry import queries as registry_queries
from campaigns.staff import MANAGERS, actor_for
from campaigns.web.http import (
    ApiRouter,
    current_staff,
    int_param,
    json_response,
    parse_body,
)
from campaigns.web.keys import RUNTIME

router = ApiRouter("templates")

MAX_BODY = 10_000


class TemplateCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    channel: Literal["sms", "email", "appel"]
    body: str = Field(min_length=1, max_length=MAX_BODY)
    subject: str | None = Field(default=None, max_length=255)
    body_html: str | None = Field(default=None, max_length=5 * MAX_BODY)
    fold_accents: bool = False


class TemplateUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=MAX_BODY)
    subject: str | None = Field(default=None, max_length=255)
    body_html: str | None = Field(default=None, max_length=5 * MAX_BODY)
    fold_accents: bool = False


class TemplateOut(BaseModel):
    id: int
    name: str
    channel: str
    current_version: int
    version_id: int
    version: int
    subject: str | None
    body: str
    body_html: str | None
    fold_accents: bool


class PreviewRequest(BaseModel):
    channel: Literal["sms", "email", "appel"]
    body: str = Field(min_length=1, max_length=MAX_BODY)
    subject: str | None = Field(default=None, max_length=255)
    body_html: str | None = Field(default=None, max_length=5 * MAX_BODY)
    person_id: int | None = None
    fold_accents: bool = False


class PreviewOut(BaseModel):
    channel: str
    text: str
    encoding: str | None
    segments: int
    parts: list[str]
    units: int
    ucs2_chars: list[str]
    normalised: bool
    folded: bool
    optout_mention: str | None
    subject: str | None = None
    html: str | None = None


def _content(body: TemplateCreate | TemplateUpdate | PreviewRequest) -> store.TemplateContent:
    return store.TemplateContent(body.body, body.subject, body.body_html, body.fold_accents)


@router.route(
    "GET",
    "/api/v1/templates",
    summary="Lister les modèles (les modèles par défaut sont ajoutés au premier appel)",
    roles=MANAGERS,
    query=("channel",),
)
async def list_templates(request: web.Request) -> web.Response:
    # Seeding here keeps it off the start-up path and makes it happen on first use.
    await store.seed_default_templates()
    channel = request.query.get("channel") or None
    return json_response({"items": await store.list_templates(channel)})


@router.route(
    "POST",
    "/api/v1/templates",
    summary="Créer un modèle (version 1)",
    roles=MANAGERS,
    body=TemplateCreate,
    response=TemplateOut,
)
async def create_template(request: web.Request) -> web.Response:
    body = await parse_body(request, TemplateCreate)
    actor = actor_for(current_staff(request))
    template = await store.create_template(body.name, body.channel, _content(body), actor=actor)
    return json_response(await store.get_template(template.id), status=201)


@router.route(
    "GET",
    "/api/v1/templates/{id}",
    summary="Un modèle : sa version courante et la liste de ses versions",
    roles=MANAGERS,
    response=TemplateOut,
)
async def get_template(request: web.Request) -> web.Response:
    return json_response(await store.get_template(int_param(request, "id")))


@router.route(
    "PUT",
    "/api/v1/templates/{id}",
    summary="Modifier un modèle (une nouvelle version ; les campagnes gardent la leur)",
    roles=MANAGERS,
    body=TemplateUpdate,
    response=TemplateOut,
)
async def update_template(request: web.Request) -> web.Response:
    template_id = int_param(request, "id")
    body = await parse_body(request, TemplateUpdate)
    actor = actor_for(current_staff(request))
    await store.update_template(template_id, _content(body), actor=actor, name=body.name)
    return json_response(await store.get_template(template_id))


@router.route(
    "POST",
    "/api/v1/templates/preview",
    summary="Aperçu d'un message pour une personne (ou une personne fictive) et son coût SMS",
    roles=MANAGERS,
    body=PreviewRequest,
    response=PreviewOut,
)
async def preview(request: web.Request) -> web.Response:
    body = await parse_body(request, PreviewRequest)
    settings = request.app[RUNTIME].settings
    person_vars = None
    if body.person_id is not None:
        actor = actor_for(current_staff(request))
        person = await registry_queries.view_person(body.person_id, actor=actor, via="preview")
        person_vars = store.person_vars(person.civility, person.first_name, person.last_name)
    result = await store.preview_off_loop(
        body.channel, _content(body), settings, person=person_vars
    )
    return json_response(result)

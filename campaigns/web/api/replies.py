"""HTTP routes for the replies inbox: every reply with its label and why, and corrections."""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from campaigns.core.errors import Invalid
from campaigns.replies import inbox
from campaigns.replies.inbox import InboxFilter
from campaigns.staff import ALL_ROLES, MANAGERS, actor_for
from campaigns.web.api.people import query_int
from campaigns.web.http import ApiRouter, current_staff, int_param, json_response, parse_body
from campaigns.web.keys import RUNTIME

router = ApiRouter("replies")

Label = Literal["opt_out", "callback", "distress", "thanks", "other"]


class ReplyItem(BaseModel):
    id: int
    received_at: str
    msisdn: str
    text: str
    label: str | None
    label_name: str
    explanation: dict[str, Any]
    person_id: int | None
    person_name: str | None
    campaign_id: int | None
    escalation_id: int | None
    read: bool
    read_at: str | None
    auto_archived: bool


class ReplyPage(BaseModel):
    items: list[ReplyItem]
    total: int
    unread: int
    page: int
    page_size: int


class LabelIn(BaseModel):
    label: Label


class LabelOut(BaseModel):
    id: int
    label: str
    previous: str | None
    escalation_id: int | None


class ReadIn(BaseModel):
    ids: list[int] = Field(min_length=1, max_length=500)


class ReadOut(BaseModel):
    changed: int


def _unread(request: web.Request) -> bool | None:
    raw = request.query.get("unread", "").strip().lower()
    if raw in ("", "all", "tous"):
        return None
    if raw in ("1", "true", "oui", "yes"):
        return True
    if raw in ("0", "false", "non", "no"):
        return False
    raise Invalid("Paramètre unread : attendu true ou false", code="bad_query")


@router.route(
    "GET",
    "/api/v1/replies",
    summary="Boîte des réponses : chaque réponse, son étiquette et pourquoi, lue ou non",
    roles=MANAGERS,
    response=ReplyPage,
    query=("label", "unread", "campaign_id", "page"),
)
async def list_replies(request: web.Request) -> web.Response:
    staff = current_staff(request)
    campaign = request.query.get("campaign_id", "").strip()
    where = InboxFilter(
        label=request.query.get("label") or None,
        unread=_unread(request),
        campaign_id=query_int(request, "campaign_id", 0) if campaign else None,
        page=query_int(request, "page", 1),
    )
    return json_response(await inbox.list_replies(staff, where, actor_for(staff)))


@router.route(
    "POST",
    "/api/v1/replies/{id}/label",
    summary="Corriger l'étiquette d'une réponse (réorientée si elle devient une détresse)",
    roles=ALL_ROLES,
    body=LabelIn,
    response=LabelOut,
)
async def correct_label(request: web.Request) -> web.Response:
    staff = current_staff(request)
    body = await parse_body(request, LabelIn)
    result = await inbox.correct_label(
        staff,
        int_param(request, "id"),
        body.label,
        runtime=request.app[RUNTIME],
        actor=actor_for(staff),
    )
    return json_response(result)


@router.route(
    "POST",
    "/api/v1/replies/read",
    summary="Marquer des réponses comme lues",
    roles=MANAGERS,
    body=ReadIn,
    response=ReadOut,
)
async def mark_read(request: web.Request) -> web.Response:
    staff = current_staff(request)
    body = await parse_body(request, ReadIn)
    runtime = request.app[RUNTIME]
    changed = await inbox.mark_read(staff, body.ids, now=runtime.clock(), actor=actor_for(staff))
    return json_response({"changed": changed})

"""HTTP routes of the caseworkers' queues: list, view, next, claim, notes, snooze, resolve..."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from campaigns import escalations as service
from campaigns.core.errors import Invalid, NotFound
from campaigns.core.runtime import Runtime
from campaigns.escalations import queries as escalation_queries
from campaigns.models import Escalation, EscalationNote, Reply
from campaigns.rules.queues import OUTCOMES, QUEUE_LABELS, priority_label, rules_for
from campaigns.staff import ALL_ROLES, is_manager
from campaigns.web.http import (
    ApiRouter,
    current_staff,
    int_param,
    json_response,
    parse_body,
)
from campaigns.web.keys import RUNTIME

router = ApiRouter("escalations")

_TRUE = {"1", "true", "oui", "yes"}
_FALSE = {"0", "false", "non", "no"}
_MAX_LIMIT = 200


# --- bodies and responses (they also make the OpenAPI document) ------------------------


class NoteBody(BaseModel):
    text: str = Field(min_length=1, max_length=service.MAX_NOTE)


class SnoozeBody(BaseModel):
    until: datetime = Field(description="Date de rappel : la situation revient alors en file")


class ResolveBody(BaseModel):
    outcome: str = Field(description="Une des issues de GET /api/v1/queues")
    note: str | None = Field(default=None, max_length=service.MAX_NOTE)


class AssigneeOut(BaseModel):
    id: int
    name: str


class EscalationOut(BaseModel):
    id: int
    queue: str
    queue_label: str
    priority: int
    priority_label: str
    status: str
    status_label: str
    assignee: AssigneeOut | None
    due_at: datetime
    overdue: bool
    overdue_notified_at: datetime | None
    snoozed_until: datetime | None
    outcome: str | None
    outcome_label: str | None
    person_id: int | None
    known_sender: bool
    multiple_candidates: bool
    reply_count: int
    created_at: datetime
    claimed_at: datetime | None
    resolved_at: datetime | None


class EscalationList(BaseModel):
    items: list[EscalationOut]
    page: int
    limit: int


class NoteOut(BaseModel):
    id: int
    author: str
    text: str
    created_at: datetime


class ReplyOut(BaseModel):
    id: int
    received_at: datetime
    text: str
    label: str | None
    complete: bool


class EscalationDetail(EscalationOut):
    msisdn: str | None
    notes: list[NoteOut]
    replies: list[ReplyOut]
    message: dict[str, Any] | None
    person: dict[str, Any] | None
    candidates: list[dict[str, Any]]


class QueueOut(BaseModel):
    code: str
    label: str
    due: str
    priority: int
    open: int


class QueuesOut(BaseModel):
    queues: list[QueueOut]
    outcomes: dict[str, str]


# --- helpers -------------------------------------------------------------------------


def _runtime(request: web.Request) -> Runtime:
    return request.app[RUNTIME]


def _summary(escalation: Escalation, now: datetime) -> dict[str, Any]:
    assignee = escalation.assignee if escalation.assignee_id is not None else None
    return {
        "id": escalation.id,
        "queue": escalation.queue,
        "queue_label": QUEUE_LABELS.get(escalation.queue, escalation.queue),
        "priority": escalation.priority,
        "priority_label": priority_label(escalation.priority),
        "status": escalation.status.value,
        "status_label": service.STATUS_LABELS[escalation.status],
        "assignee": {"id": assignee.id, "name": assignee.name or assignee.email}
        if assignee is not None
        else None,
        "due_at": escalation.due_at,
        "overdue": service.is_overdue(escalation, now),
        "overdue_notified_at": escalation.overdue_notified_at,
        "snoozed_until": escalation.snoozed_until,
        "outcome": escalation.outcome,
        "outcome_label": OUTCOMES.get(escalation.outcome) if escalation.outcome else None,
        "person_id": escalation.person_id,
        "known_sender": escalation.person_id is not None,
        "multiple_candidates": escalation.multiple_candidates,
        "reply_count": len(escalation.reply_ids or []),
        "created_at": escalation.created_at,
        "claimed_at": escalation.claimed_at,
        "resolved_at": escalation.resolved_at,
    }


async def _one(escalation: Escalation, now: datetime) -> web.Response:
    await escalation_queries.load_assignee(escalation)
    return json_response(EscalationOut(**_summary(escalation, now)).model_dump(mode="json"))


def _bool_param(request: web.Request, name: str) -> bool | None:
    value = request.query.get(name, "").strip().lower()
    if not value:
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise Invalid(f"{name} : attendu true ou false", code="bad_filter")


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(request.query.get(name, default))
    except ValueError:
        raise Invalid(f"{name} : attendu un nombre entier", code="bad_filter") from None
    return max(low, min(high, value))


# --- routes ----------------------------------------------------------------------------


@router.route(
    "GET",
    "/api/v1/queues",
    summary="Les files que je travaille, leurs délais, et les issues possibles",
    roles=ALL_ROLES,
    response=QueuesOut,
)
async def list_queues(request: web.Request) -> web.Response:
    staff = current_staff(request)
    runtime = _runtime(request)
    rules = rules_for(runtime.settings)
    visible = [code for code in QUEUE_LABELS if is_manager(staff) or staff.works(code)]
    counts = await escalation_queries.queue_counts(visible, now=runtime.clock())
    queues = [
        {
            "code": code,
            "label": rules[code].label,
            "due": rules[code].describe,
            "priority": rules[code].priority,
            "open": counts[code].active,
        }
        for code in visible
    ]
    return json_response({"queues": queues, "outcomes": OUTCOMES})


@router.route(
    "GET",
    "/api/v1/escalations",
    summary="Lister les situations (par priorité, puis retard, puis ancienneté)",
    roles=ALL_ROLES,
    response=EscalationList,
    query=("queue", "status", "assignee", "overdue", "page", "limit"),
)
async def list_escalations(request: web.Request) -> web.Response:
    staff = current_staff(request)
    now = _runtime(request).clock()
    page = _int_query(request, "page", 1, 1, 1_000_000)
    limit = _int_query(request, "limit", 50, 1, _MAX_LIMIT)
    rows = await service.list_escalations(
        staff,
        now=now,
        queue=request.query.get("queue") or None,
        status=request.query.get("status") or None,
        assignee=request.query.get("assignee") or None,
        overdue=_bool_param(request, "overdue"),
        limit=limit,
        offset=(page - 1) * limit,
    )
    items = [_summary(row, now) for row in rows]
    return json_response(
        EscalationList(items=items, page=page, limit=limit).model_dump(mode="json")
    )


@router.route(
    "GET",
    "/api/v1/escalations/{id}",
    summary="Voir une situation : notes, réponses, message reçu, personne (tracé)",
    roles=ALL_ROLES,
    response=EscalationDetail,
)
async def show_escalation(request: web.Request) -> web.Response:
    staff = current_staff(request)
    view = await service.escalation_view(staff, int_param(request, "id"), _runtime(request))
    escalation: Escalation = view["escalation"]
    notes: list[EscalationNote] = view["notes"]
    replies: list[Reply] = view["replies"]
    detail = EscalationDetail(
        **_summary(escalation, view["now"]),
        msisdn=escalation.msisdn,
        notes=[
            NoteOut(id=n.id, author=n.author_label, text=n.text, created_at=n.created_at)
            for n in notes
        ],
        replies=[
            ReplyOut(
                id=r.id, received_at=r.received_at, text=r.text, label=r.label, complete=r.complete
            )
            for r in replies
        ],
        message=view["message"],
        person=view["person"],
        candidates=view["candidates"],
    )
    return json_response(detail.model_dump(mode="json"))


@router.route(
    "POST",
    "/api/v1/queues/{queue}/next",
    summary="Prendre la situation la plus urgente de la file (404 si la file est vide)",
    roles=ALL_ROLES,
    response=EscalationOut,
)
async def next_in_queue(request: web.Request) -> web.Response:
    staff = current_staff(request)
    runtime = _runtime(request)
    queue = request.match_info["queue"]
    escalation = await service.claim_next(staff, queue, runtime)
    if escalation is None:
        raise NotFound(
            f"Aucune situation à prendre dans la file « {QUEUE_LABELS.get(queue, queue)} »",
            code="queue_empty",
        )
    return await _one(escalation, runtime.clock())


@router.route(
    "POST",
    "/api/v1/escalations/{id}/claim",
    summary="Prendre en charge une situation",
    roles=ALL_ROLES,
    response=EscalationOut,
)
async def claim(request: web.Request) -> web.Response:
    runtime = _runtime(request)
    escalation = await service.claim(current_staff(request), int_param(request, "id"), runtime)
    return await _one(escalation, runtime.clock())


@router.route(
    "POST",
    "/api/v1/escalations/{id}/notes",
    summary="Ajouter une note privée",
    roles=ALL_ROLES,
    body=NoteBody,
    response=NoteOut,
)
async def add_note(request: web.Request) -> web.Response:
    body = await parse_body(request, NoteBody)
    note = await service.add_note(
        current_staff(request), int_param(request, "id"), body.text, _runtime(request)
    )
    out = NoteOut(id=note.id, author=note.author_label, text=note.text, created_at=note.created_at)
    return json_response(out.model_dump(mode="json"), status=201)


@router.route(
    "POST",
    "/api/v1/escalations/{id}/snooze",
    summary="Mettre en attente jusqu'à une date de rappel",
    roles=ALL_ROLES,
    body=SnoozeBody,
    response=EscalationOut,
)
async def snooze(request: web.Request) -> web.Response:
    body = await parse_body(request, SnoozeBody)
    runtime = _runtime(request)
    escalation = await service.snooze(
        current_staff(request), int_param(request, "id"), body.until, runtime
    )
    return await _one(escalation, runtime.clock())


@router.route(
    "POST",
    "/api/v1/escalations/{id}/resolve",
    summary="Clôturer avec une issue",
    roles=ALL_ROLES,
    body=ResolveBody,
    response=EscalationOut,
)
async def resolve(request: web.Request) -> web.Response:
    body = await parse_body(request, ResolveBody)
    runtime = _runtime(request)
    escalation = await service.resolve(
        current_staff(request), int_param(request, "id"), body.outcome, runtime, note=body.note
    )
    return await _one(escalation, runtime.clock())


@router.route(
    "POST",
    "/api/v1/escalations/{id}/reopen",
    summary="Rouvrir une situation clôturée",
    roles=ALL_ROLES,
    response=EscalationOut,
)
async def reopen(request: web.Request) -> web.Response:
    runtime = _runtime(request)
    escalation = await service.reopen(current_staff(request), int_param(request, "id"), runtime)
    return await _one(escalation, runtime.clock())

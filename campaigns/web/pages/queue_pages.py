"""Files d'attente: work a queue by urgency, take the next one, read, annotate, resolve, snooze."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from campaigns import escalations as service
from campaigns.core.errors import DomainError, Forbidden, NotFound
from campaigns.escalations import queries as escalation_queries
from campaigns.models import Escalation, Staff
from campaigns.registry import queries as registry_queries
from campaigns.rules.queues import OUTCOMES, QUEUE_LABELS, priority_label, rules_for
from campaigns.staff import ALL_ROLES, is_manager
from campaigns.web.keys import RUNTIME
from campaigns.web.pages import helpers as h
from campaigns.web.pages.base import PageRouter, render

router = PageRouter()
VIEWS = {"toutes": "all", "miennes": "me", "libres": "none"}
STATUS_CHOICES = {"actives": None, "cloturees": "resolved", "toutes": "all"}


async def forbidden(request: web.Request) -> web.StreamResponse:
    return await render("forbidden.html", request, {}, status=403)


def due_text(due: datetime, now: datetime) -> str:
    """ "dans 42 min" or "en retard de 10 min", as app.js keeps saying it."""
    minutes = round((due - now).total_seconds() / 60)
    amount = abs(minutes)
    if amount >= 48 * 60:
        span = f"{amount // (24 * 60)} j"
    elif amount >= 120:
        span = f"{amount // 60} h {amount % 60:02d}"
    else:
        span = f"{amount} min"
    return f"dans {span}" if minutes >= 0 else f"en retard de {span}"


def _visible_queues(staff: Staff) -> list[str]:
    if is_manager(staff):
        return list(QUEUE_LABELS)
    return [q for q in QUEUE_LABELS if staff.works(q)]


@router.page("GET", "/files", ALL_ROLES, "queues.html")
async def queues_page(request: web.Request) -> dict[str, Any]:
    staff = h.staff_of(request)
    rules = rules_for(request.app[RUNTIME].settings)
    now = h.now(request)
    visible = _visible_queues(staff)
    counts = await escalation_queries.queue_counts(visible, now=now, staff_id=staff.id)
    queues = [
        {
            "code": code,
            "label": QUEUE_LABELS[code],
            "due": rules[code].describe,
            "open": counts[code].active,
            "overdue": counts[code].overdue,
            "mine": counts[code].mine,
        }
        for code in visible
    ]
    return {"queues": queues}


async def _rows(escalations: list[Escalation], now: datetime) -> list[dict[str, Any]]:
    people = await registry_queries.people_by_id(e.person_id for e in escalations if e.person_id)
    rows = []
    for e in escalations:
        person = people.get(e.person_id) if e.person_id else None
        rows.append(
            {
                "e": e,
                "who": person.display_name if person else (e.msisdn or "Expéditeur inconnu"),
                "priority": priority_label(e.priority),
                "status": service.STATUS_LABELS[e.status],
                "overdue": service.is_overdue(e, now),
                "due_text": due_text(e.due_at, now),
                "assignee": (e.assignee.name or e.assignee.email) if e.assignee else None,
            }
        )
    return rows


@router.page("GET", "/files/{queue}", ALL_ROLES, "queue.html")
async def queue_page(request: web.Request) -> web.StreamResponse | dict[str, Any]:
    staff = h.staff_of(request)
    queue = request.match_info["queue"]
    if queue not in QUEUE_LABELS:
        raise web.HTTPNotFound()
    view = request.query.get("vue", "toutes")
    status = request.query.get("statut", "actives")
    now = h.now(request)
    try:
        escalations = await service.list_escalations(
            staff,
            now=now,
            queue=queue,
            status=STATUS_CHOICES.get(status),
            assignee=VIEWS.get(view, "all"),
            limit=200,
        )
    except Forbidden:
        return await forbidden(request)
    return {
        "queue": queue,
        "label": QUEUE_LABELS[queue],
        "view": view if view in VIEWS else "toutes",
        "status": status if status in STATUS_CHOICES else "actives",
        "rows": await _rows(escalations, now),
        "now": now,
    }


@router.page("POST", "/files/{queue}/suivant", ALL_ROLES)
async def take_next(request: web.Request) -> web.StreamResponse:
    staff = h.staff_of(request)
    queue = request.match_info["queue"]
    try:
        escalation = await service.claim_next(staff, queue, request.app[RUNTIME])
    except Forbidden:
        return await forbidden(request)
    if escalation is None:
        label = QUEUE_LABELS.get(queue, queue)
        await h.flash(request, f"Aucune situation à prendre dans la file « {label} ».")
        raise web.HTTPSeeOther(f"/files/{queue}")
    raise web.HTTPSeeOther(f"/situations/{escalation.id}")


def _escalation_id(request: web.Request) -> int:
    value = h.int_or_none(request.match_info["id"])
    if value is None:
        raise web.HTTPNotFound()
    return value


@router.page("GET", "/situations/{id}", ALL_ROLES, "escalation.html")
async def escalation_page(request: web.Request) -> web.StreamResponse | dict[str, Any]:
    staff = h.staff_of(request)
    runtime = request.app[RUNTIME]
    try:
        # escalation_view audits the view of the escalation and of each person shown.
        view = await service.escalation_view(staff, _escalation_id(request), runtime)
    except Forbidden:
        return await forbidden(request)
    escalation: Escalation = view["escalation"]
    # A caseworker sees only what the queues they work justify (see person_history).
    history = await service.person_history(staff, escalation)
    now = view["now"]
    return {
        **view,
        "e": escalation,
        "label": QUEUE_LABELS.get(escalation.queue, escalation.queue),
        "status_label": service.STATUS_LABELS[escalation.status],
        "priority": priority_label(escalation.priority),
        "overdue": service.is_overdue(escalation, now),
        "due_text": due_text(escalation.due_at, now),
        "outcomes": OUTCOMES,
        "history": history,
        "reply_labels": h.REPLY_LABELS,
        "message_labels": h.MESSAGE_STATUS_LABELS,
        "queue_labels": QUEUE_LABELS,
        "segment_labels": h.SEGMENT_LABELS,
        "is_mine": escalation.assignee_id == staff.id,
        "staff_is_manager": is_manager(staff),
    }


async def _act(request: web.Request, action: str) -> web.StreamResponse:
    staff = h.staff_of(request)
    runtime = request.app[RUNTIME]
    escalation_id = _escalation_id(request)
    form = await h.form_data(request)
    try:
        await service.get_escalation(staff, escalation_id)
    except NotFound:
        raise web.HTTPNotFound() from None
    except Forbidden:
        return await forbidden(request)
    done = {
        "claim": "Situation prise en charge.",
        "note": "Note ajoutée.",
        "resolve": "Situation clôturée.",
        "snooze": "Rappel programmé : la situation reviendra à cette date.",
        "reopen": "Situation rouverte.",
    }
    try:
        if action == "claim":
            await service.claim(staff, escalation_id, runtime)
        elif action == "note":
            await service.add_note(staff, escalation_id, h.text(form, "text"), runtime)
        elif action == "resolve":
            await service.resolve(
                staff,
                escalation_id,
                h.text(form, "outcome"),
                runtime,
                note=h.text(form, "note") or None,
            )
        elif action == "snooze":
            raw = h.text(form, "until")
            try:
                until = datetime.fromisoformat(raw)
            except ValueError:
                raise DomainError("Indiquez la date et l'heure du rappel.") from None
            await service.snooze(staff, escalation_id, until, runtime)
        else:
            await service.reopen(staff, escalation_id, runtime)
    except DomainError as exc:
        await h.flash(request, exc.detail, "error")
    else:
        await h.flash(request, done[action])
    raise web.HTTPSeeOther(f"/situations/{escalation_id}")


@router.page("POST", "/situations/{id}/prendre", ALL_ROLES)
async def escalation_claim(request: web.Request) -> web.StreamResponse:
    return await _act(request, "claim")


@router.page("POST", "/situations/{id}/note", ALL_ROLES)
async def escalation_note(request: web.Request) -> web.StreamResponse:
    return await _act(request, "note")


@router.page("POST", "/situations/{id}/cloturer", ALL_ROLES)
async def escalation_resolve(request: web.Request) -> web.StreamResponse:
    return await _act(request, "resolve")


@router.page("POST", "/situations/{id}/reporter", ALL_ROLES)
async def escalation_snooze(request: web.Request) -> web.StreamResponse:
    return await _act(request, "snooze")


@router.page("POST", "/situations/{id}/rouvrir", ALL_ROLES)
async def escalation_reopen(request: web.Request) -> web.StreamResponse:
    return await _act(request, "reopen")

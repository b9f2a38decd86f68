"""Journal (audit trail), Équipe (staff accounts and their queues), Envoyés (console outbox)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from aiohttp import web
from aiohttp_session import get_session

from campaigns import staff as staff_service
from campaigns.core import audit
from campaigns.core.errors import DomainError
from campaigns.models import AuditEvent, Role, Staff
from campaigns.rules.queues import QUEUE_LABELS
from campaigns.web.keys import RUNTIME
from campaigns.web.pages import helpers as h
from campaigns.web.pages.base import ADMINS, MANAGERS, PageRouter

router = PageRouter()
JOURNAL_PAGE = 50
ROLE_LABELS = {
    Role.ADMIN.value: "Administrateur",
    Role.COORDINATOR.value: "Coordinateur",
    Role.CASEWORKER.value: "Travailleur social",
}
# The one-time password waits in the encrypted session until the next page shows it once.
NEW_PASSWORD_KEY = "new_staff_password"


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


@router.page("GET", "/journal", ADMINS, "journal.html")
async def journal(request: web.Request) -> dict[str, Any]:
    q = request.query
    filters = {
        "action": q.get("action", "").strip(),
        "actor": q.get("acteur", "").strip(),
        "object_type": q.get("objet", "").strip(),
        "object_id": q.get("id", "").strip(),
        "from": q.get("du", "").strip(),
        "to": q.get("au", "").strip(),
    }
    query = AuditEvent.all()
    if filters["action"]:
        query = query.filter(action=filters["action"])
    if filters["actor"]:
        query = query.filter(actor_label__icontains=filters["actor"])
    if filters["object_type"]:
        query = query.filter(object_type=filters["object_type"])
    if filters["object_id"]:
        query = query.filter(object_id=filters["object_id"])
    tz = request.app[RUNTIME].settings.tz
    start, end = _day(filters["from"]), _day(filters["to"])
    if start:
        query = query.filter(at__gte=datetime.combine(start, time(), tzinfo=tz))
    if end:
        query = query.filter(at__lt=datetime.combine(end + timedelta(days=1), time(), tzinfo=tz))
    page = h.query_page(request)
    total = await query.count()
    events = (
        await query.order_by("-at", "-id").offset((page - 1) * JOURNAL_PAGE).limit(JOURNAL_PAGE)
    )
    actions = await AuditEvent.all().distinct().order_by("action").values_list("action", flat=True)
    types = await (
        AuditEvent.all().distinct().order_by("object_type").values_list("object_type", flat=True)
    )
    return {
        "events": events,
        "filters": filters,
        "actions": actions,
        "object_types": types,
        "total": total,
        "pager": h.pager(request, page, JOURNAL_PAGE, total),
    }


async def _team_context(
    request: web.Request, error: str | None = None, form: dict[str, Any] | None = None
) -> dict[str, Any]:
    session = await get_session(request)
    new_password = session.pop(NEW_PASSWORD_KEY, None)
    return {
        "members": await Staff.all().order_by("-active", "email"),
        "roles": ROLE_LABELS,
        "queue_labels": QUEUE_LABELS,
        "new_password": new_password,
        "error": error,
        "form": form or {},
    }


@router.page("GET", "/equipe", ADMINS, "team.html")
async def team(request: web.Request) -> dict[str, Any]:
    return await _team_context(request)


def _queues(form: dict[str, Any]) -> list[str]:
    values = form.get("queues[]", [])
    return [values] if isinstance(values, str) else list(values)


@router.page("POST", "/equipe", ADMINS, "team.html")
async def team_create(request: web.Request) -> web.StreamResponse | dict[str, Any]:
    form = await h.form_data(request)
    try:
        member, password = await staff_service.create_staff(
            h.text(form, "email"),
            h.text(form, "role"),
            name=h.text(form, "name"),
            queues=_queues(form) if "queues_given" in form else None,
            actor=h.actor(request),
        )
    except DomainError as exc:
        return await _team_context(request, exc.detail, form)
    session = await get_session(request)
    session[NEW_PASSWORD_KEY] = {"email": member.email, "password": password}
    raise web.HTTPSeeOther("/equipe")


def _member_id(request: web.Request) -> int:
    value = h.int_or_none(request.match_info["id"])
    if value is None:
        raise web.HTTPNotFound()
    return value


@router.page("POST", "/equipe/{id}/files", ADMINS)
async def team_queues(request: web.Request) -> web.StreamResponse:
    member = await Staff.get_or_none(id=_member_id(request))
    if member is None:
        raise web.HTTPNotFound()
    form = await h.form_data(request)
    queues = [q for q in _queues(form) if q in QUEUE_LABELS]
    member.queues = queues
    await member.save(update_fields=["queues"])
    await audit.record(h.actor(request), "staff.queues", "staff", member.id, queues=queues)
    await h.flash(request, f"Files de {member.email} mises à jour.")
    raise web.HTTPSeeOther("/equipe")


@router.page("POST", "/equipe/{id}/activation", ADMINS)
async def team_activation(request: web.Request) -> web.StreamResponse:
    member = await Staff.get_or_none(id=_member_id(request))
    if member is None:
        raise web.HTTPNotFound()
    me = h.staff_of(request)
    if member.id == me.id:
        await h.flash(request, "Vous ne pouvez pas désactiver votre propre compte.", "error")
        raise web.HTTPSeeOther("/equipe")
    member.active = not member.active
    await member.save(update_fields=["active"])
    action = "staff.activate" if member.active else "staff.deactivate"
    await audit.record(h.actor(request), action, "staff", member.id)
    state = "réactivé" if member.active else "désactivé"
    await h.flash(request, f"Compte {member.email} {state}.")
    raise web.HTTPSeeOther("/equipe")


@router.page("GET", "/envoyes", MANAGERS, "outbox.html")
async def outbox(request: web.Request) -> dict[str, Any]:
    from providers.console import read_outbox

    settings = request.app[RUNTIME].settings
    console = settings.sms_provider == "console"
    records = read_outbox(settings.outbox_dir, limit=200) if console else []
    return {"console": console, "records": records, "outbox_dir": str(settings.outbox_dir)}

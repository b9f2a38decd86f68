"""Journal (audit trail), Équipe (staff accounts and their queues), Envoyés (console outbox)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from aiohttp import web
from aiohttp_session import get_session

from campaigns import staff as staff_service
from campaigns.core.audit_text import action_label, journal_lines, object_label, proper_name
from campaigns.core.errors import DomainError
from campaigns.dispatch.queries import OUTBOX_LIMIT, console_outbox
from campaigns.models import Role
from campaigns.registry import queries as registry_queries
from campaigns.replies.simulation import simulate_reply
from campaigns.rules.queues import QUEUE_LABELS
from campaigns.staff import ADMINS, MANAGERS
from campaigns.web.keys import RUNTIME
from campaigns.web.pages import helpers as h
from campaigns.web.pages.base import PageRouter

router = PageRouter()
JOURNAL_PAGE = 50
ROLE_LABELS = {
    Role.ADMIN.value: "Administrateur",
    Role.COORDINATOR.value: "Coordinateur",
    Role.CASEWORKER.value: "Travailleur social",
    Role.BENEVOLE.value: "Bénévole (appels seulement)",
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
    tz = request.app[RUNTIME].settings.tz
    start, end = _day(filters["from"]), _day(filters["to"])
    criteria = staff_service.JournalFilter(
        action=filters["action"],
        actor=filters["actor"],
        object_type=filters["object_type"],
        object_id=filters["object_id"],
        since=datetime.combine(start, time(), tzinfo=tz) if start else None,
        until=datetime.combine(end + timedelta(days=1), time(), tzinfo=tz) if end else None,
    )
    page = h.query_page(request)
    found = await staff_service.journal(
        criteria, offset=(page - 1) * JOURNAL_PAGE, limit=JOURNAL_PAGE
    )
    return {
        "events": await journal_lines(found.events),
        "filters": filters,
        "actions": sorted(
            ((a, action_label(a)) for a in found.actions), key=lambda pair: pair[1].casefold()
        ),
        "object_types": sorted(
            ((t, object_label(t)) for t in found.object_types),
            key=lambda pair: pair[1].casefold(),
        ),
        "total": found.total,
        "pager": h.pager(request, page, JOURNAL_PAGE, found.total),
    }


async def _team_context(
    request: web.Request, error: str | None = None, form: dict[str, Any] | None = None
) -> dict[str, Any]:
    session = await get_session(request)
    new_password = session.pop(NEW_PASSWORD_KEY, None)
    return {
        "members": await staff_service.list_staff(),
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
    member_id = _member_id(request)
    form = await h.form_data(request)
    member = await staff_service.set_queues(member_id, _queues(form), actor=h.actor(request))
    if member is None:
        raise web.HTTPNotFound()
    await h.flash(request, f"Files de {member.email} mises à jour.")
    raise web.HTTPSeeOther("/equipe")


@router.page("POST", "/equipe/{id}/activation", ADMINS)
async def team_activation(request: web.Request) -> web.StreamResponse:
    try:
        member = await staff_service.toggle_active(_member_id(request), actor=h.actor(request))
    except DomainError as exc:
        await h.flash(request, exc.detail, "error")
        raise web.HTTPSeeOther("/equipe") from None
    if member is None:
        raise web.HTTPNotFound()
    state = "réactivé" if member.active else "désactivé"
    await h.flash(request, f"Compte {member.email} {state}.")
    raise web.HTTPSeeOther("/equipe")


# The outcome of the last simulated reply, shown once on the outbox page.
SIMULATED_KEY = "simulated_reply"


@router.page("GET", "/envoyes", MANAGERS, "outbox.html")
async def outbox(request: web.Request) -> dict[str, Any]:
    settings = request.app[RUNTIME].settings
    records = await console_outbox(request.app[RUNTIME], limit=OUTBOX_LIMIT)
    session = await get_session(request)
    numbers = [r["to"] for r in records or [] if r.get("channel", "sms") == "sms" and r.get("to")]
    return {
        "console": records is not None,
        "records": records or [],
        "outbox_dir": str(settings.outbox_dir),
        # The form offers the numbers messages went to: a reply comes from one of them.
        "recent_numbers": list(dict.fromkeys(numbers))[:20],
        "simulated": session.pop(SIMULATED_KEY, None),
        "reply_labels": h.REPLY_LABELS,
    }


@router.page("POST", "/envoyes/reponse", MANAGERS)
async def outbox_simulate_reply(request: web.Request) -> web.StreamResponse:
    """A reply typed by the coordinator, as if the person had answered (console mode only)."""
    runtime = request.app[RUNTIME]
    form = await h.form_data(request)
    number, text = h.text(form, "number"), str(form.get("text", "")).strip()
    try:
        reply = await simulate_reply(runtime, number, text)
    except DomainError as exc:
        await h.flash(request, f"Réponse non simulée : {exc.detail}.", "error")
        raise web.HTTPSeeOther("/envoyes") from None
    name = None
    if reply.person_id is not None:
        # The result names the person to the coordinator: a view of their record.
        person = await registry_queries.view_person(
            reply.person_id, actor=h.actor(request), via="simulation"
        )
        name = " ".join(proper_name(n) for n in (person.first_name, person.last_name) if n)
    session = await get_session(request)
    session[SIMULATED_KEY] = {
        "number": reply.msisdn,
        "text": reply.text,
        "label": h.REPLY_LABELS.get(reply.label or "", "non classée"),
        "person_id": reply.person_id,
        "person_name": name,
        "escalation_id": reply.escalation_id,
        "opt_out": reply.opt_out_requested,
    }
    raise web.HTTPSeeOther("/envoyes")

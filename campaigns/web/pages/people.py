"""Personnes: search the registry, a person's page (audited), rectify and erase."""

from __future__ import annotations

from datetime import date
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from campaigns.core import audit
from campaigns.core.audit_text import journal_lines
from campaigns.core.errors import DomainError
from campaigns.registry import people
from campaigns.registry import queries as registry_queries
from campaigns.registry.people import PersonPatch
from campaigns.rules.queues import OUTCOMES, QUEUE_LABELS
from campaigns.staff import MANAGERS
from campaigns.web.pages import helpers as h
from campaigns.web.pages.base import PageRouter

router = PageRouter()
PAGE_SIZE = 50
EDITABLE = (
    ("external_ref", "N° de dossier", "text"),
    ("civility", "Civilité", "text"),
    ("last_name", "Nom", "text"),
    ("first_name", "Prénom", "text"),
    ("birth_date", "Date de naissance", "date"),
    ("mobile", "Téléphone portable", "tel"),
    ("landline", "Téléphone fixe", "tel"),
    ("email", "Courriel", "email"),
    ("address", "Adresse", "text"),
    ("district", "Quartier", "text"),
    ("referent_email", "Référent (courriel du travailleur social)", "email"),
)


def _person_id(request: web.Request) -> int:
    value = h.int_or_none(request.match_info["id"])
    if value is None or value < 1:
        raise web.HTTPNotFound()
    return value


async def _segment_choices() -> list[dict[str, str]]:
    codes = await registry_queries.segment_codes()
    return [{"code": code, "label": h.SEGMENT_LABELS.get(code, code)} for code in codes]


@router.page("GET", "/personnes", MANAGERS, "people_list.html")
async def people_list(request: web.Request) -> dict[str, Any]:
    q = request.query.get("q", "").strip()
    segment = request.query.get("segment", "").strip()
    page = h.query_page(request)
    error = None
    try:
        result = await people.search(
            segment=segment or None, q=q or None, page=page, actor=h.actor(request)
        )
    except DomainError as exc:
        error, result = exc.detail, {"items": [], "total": 0}
    return {
        "q": q,
        "segment": segment,
        "segments": await _segment_choices(),
        "people": result["items"],
        "total": result["total"],
        "pager": h.pager(request, page, PAGE_SIZE, result["total"]),
        "error": error,
    }


@router.page("GET", "/personnes/{id}", MANAGERS, "person.html")
async def person_page(request: web.Request) -> dict[str, Any]:
    person_id = _person_id(request)
    # people.view writes the audit event for this access, as the API does.
    person = await people.view(person_id, actor=h.actor(request))
    file = await registry_queries.person_file(person_id)
    file["events"] = await journal_lines(file["events"])
    return {
        **file,
        "person": person,
        "segment_labels": h.SEGMENT_LABELS,
        "message_labels": h.MESSAGE_STATUS_LABELS,
        "skip_labels": h.SKIP_REASON_LABELS,
        "reply_labels": h.REPLY_LABELS,
        "queue_labels": QUEUE_LABELS,
        "outcomes": OUTCOMES,
    }


def _edit_context(
    person: dict[str, Any], values: dict[str, Any], error: str | None
) -> dict[str, Any]:
    return {"person": person, "fields": EDITABLE, "values": values, "error": error}


@router.page("GET", "/personnes/{id}/modifier", MANAGERS, "person_edit.html")
async def person_edit_form(request: web.Request) -> dict[str, Any]:
    person_id = _person_id(request)
    person = people.detail(await people.get_person(person_id))
    # The form shows the person's data: a view like any other.
    await audit.record(h.actor(request), "person.view", "person", person_id, page="modifier")
    values = {name: person.get(name) or "" for name, _, _ in EDITABLE}
    values["preferred_channel"] = person["preferred_channel"]
    return _edit_context(person, values, None)


def _patch_from(form: dict[str, Any]) -> PersonPatch:
    data: dict[str, Any] = {}
    for name, _, _ in EDITABLE:
        value = h.text(form, name)
        if name == "first_name":
            data[name] = value
        elif name == "last_name":
            data[name] = value or None
        else:
            data[name] = value or None
    channel = h.text(form, "preferred_channel")
    if channel:
        data["preferred_channel"] = channel
    if data.get("birth_date"):
        data["birth_date"] = date.fromisoformat(data["birth_date"])
    return PersonPatch.model_validate(data)


@router.page("POST", "/personnes/{id}/modifier", MANAGERS, "person_edit.html")
async def person_edit(request: web.Request) -> web.StreamResponse | dict[str, Any]:
    person_id = _person_id(request)
    form = await h.form_data(request)
    try:
        patch = _patch_from(form)
        await people.edit(person_id, patch, actor=h.actor(request))
    except (ValueError, ValidationError, DomainError) as exc:
        detail = exc.detail if isinstance(exc, DomainError) else _validation_text(exc)
        person = people.detail(await people.get_person(person_id))
        values = {name: h.text(form, name) for name, _, _ in EDITABLE}
        values["preferred_channel"] = h.text(form, "preferred_channel")
        return _edit_context(person, values, detail)
    await h.flash(request, "Fiche mise à jour.")
    raise web.HTTPSeeOther(f"/personnes/{person_id}")


def _validation_text(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])} : {err['msg']}" for err in exc.errors()
        )
    return "Valeur invalide (date attendue au format jj/mm/aaaa)"


@router.page("GET", "/personnes/{id}/effacer", MANAGERS, "person_erase.html")
async def person_erase_confirm(request: web.Request) -> dict[str, Any]:
    person = await people.get_person(_person_id(request))
    await audit.record(h.actor(request), "person.view", "person", person.id, page="effacer")
    addresses = [a for a in (person.mobile, person.landline, person.email) if a]
    return {"person": people.detail(person), "has_addresses": bool(addresses)}


@router.page("POST", "/personnes/{id}/effacer", MANAGERS)
async def person_erase(request: web.Request) -> web.StreamResponse:
    person_id = _person_id(request)
    form = await h.form_data(request)
    if h.text(form, "confirmer") != "oui":
        raise web.HTTPSeeOther(f"/personnes/{person_id}/effacer")
    await people.erase(person_id, actor=h.actor(request))
    await h.flash(
        request,
        "La personne a été effacée. Ses oppositions (STOP) restent enregistrées sur ses adresses.",
    )
    raise web.HTTPSeeOther("/personnes")

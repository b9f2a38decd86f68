"""Publics: build an audience filter with a live count, save it, look at who it holds."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from campaigns.core.errors import DomainError
from campaigns.registry import audiences
from campaigns.registry import queries as registry_queries
from campaigns.staff import MANAGERS
from campaigns.web.pages import helpers as h
from campaigns.web.pages.base import PageRouter

router = PageRouter()
LIST_KEYS = ("segments_any", "segments_all", "segments_none", "districts")
INT_KEYS = ("age_min", "age_max", "not_contacted_days")


def filter_from_form(form: dict[str, Any]) -> dict[str, Any]:
    """The JSON filter (DESIGN.md keys) from the builder's fields; app.js builds the same."""
    criteria: dict[str, Any] = {}
    for key in LIST_KEYS:
        values = form.get(f"{key}[]", [])
        values = [values] if isinstance(values, str) else values
        cleaned = [v.strip() for v in values if isinstance(v, str) and v.strip()]
        if cleaned:
            criteria[key] = cleaned
    for key in INT_KEYS:
        raw = h.text(form, key)
        if raw:
            criteria[key] = int(raw) if raw.isdigit() else raw
    channel = h.text(form, "channel")
    if channel:
        criteria["channel"] = channel
    return criteria


def describe_filter(criteria: dict[str, Any]) -> list[str]:
    """The filter in French sentences, for people who never see JSON."""

    def names(codes: list[str]) -> str:
        return ", ".join(h.SEGMENT_LABELS.get(c, c) for c in codes)

    lines = []
    if criteria.get("segments_any"):
        lines.append(f"Dans au moins un de : {names(criteria['segments_any'])}")
    if criteria.get("segments_all"):
        lines.append(f"Dans tous : {names(criteria['segments_all'])}")
    if criteria.get("segments_none"):
        lines.append(f"Dans aucun de : {names(criteria['segments_none'])}")
    if criteria.get("districts"):
        lines.append("Quartiers : " + ", ".join(criteria["districts"]))
    if criteria.get("age_min") is not None:
        lines.append(f"Âge minimum : {criteria['age_min']} ans")
    if criteria.get("age_max") is not None:
        lines.append(f"Âge maximum : {criteria['age_max']} ans")
    if criteria.get("channel"):
        lines.append(
            f"Joignable par {h.CHANNEL_LABELS.get(criteria['channel'], criteria['channel'])} "
            "(adresse utilisable, sans opposition)"
        )
    if criteria.get("not_contacted_days"):
        lines.append(f"Pas contacté·e depuis {criteria['not_contacted_days']} jours")
    return lines or ["Tout le registre"]


async def _builder_context(
    form: dict[str, Any] | None = None, error: str | None = None
) -> dict[str, Any]:
    codes = await registry_queries.segment_codes()
    saved = []
    for audience in await audiences.list_audiences():
        saved.append(
            {
                "audience": audience,
                "count": await audiences.count(audience.criteria),
                "lines": describe_filter(audience.criteria),
            }
        )
    form = form or {}
    return {
        "segments": [{"code": c, "label": h.SEGMENT_LABELS.get(c, c)} for c in codes],
        "districts": await registry_queries.districts(),
        "saved": saved,
        "form": {
            "name": h.text(form, "name"),
            "criteria": filter_from_form(form) if form else {},
        },
        "error": error,
    }


@router.page("GET", "/publics", MANAGERS, "audiences.html")
async def audiences_page(request: web.Request) -> dict[str, Any]:
    return await _builder_context()


@router.page("POST", "/publics", MANAGERS, "audiences.html")
async def save_audience(request: web.Request) -> web.StreamResponse | dict[str, Any]:
    form = await h.form_data(request)
    try:
        audience, size = await audiences.create_audience(
            h.text(form, "name"), filter_from_form(form), actor=h.actor(request)
        )
    except DomainError as exc:
        return await _builder_context(form, exc.detail)
    await h.flash(request, f"Public « {audience.name} » enregistré : {size} personne(s).")
    raise web.HTTPSeeOther(f"/publics/{audience.id}")


@router.page("GET", "/publics/{id}", MANAGERS, "audience.html")
async def audience_page(request: web.Request) -> dict[str, Any]:
    audience_id = h.int_or_none(request.match_info["id"])
    if audience_id is None:
        raise web.HTTPNotFound()
    audience = await audiences.get_audience(audience_id)
    page = h.query_page(request)
    members = await audiences.members(audience.criteria, page=page, page_size=50)
    return {
        "audience": audience,
        "lines": describe_filter(audience.criteria),
        "members": members,
        "pager": h.pager(request, page, 50, members["total"]),
    }

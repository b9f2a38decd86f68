"""Modèles: write and version message templates, with a live preview, encoding, parts and cost."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from aiohttp import web

from campaigns.campaign.preview import ENCODING_EXPLAINED
from campaigns.core.errors import DomainError
from campaigns.messages import template_store as store
from campaigns.registry import people
from campaigns.staff import MANAGERS
from campaigns.web.keys import RUNTIME
from campaigns.web.pages import helpers as h
from campaigns.web.pages.base import PageRouter

router = PageRouter()
PREVIEW_PEOPLE = 200


def highlight(text: str, ucs2_chars: list[str]) -> list[tuple[str, bool]]:
    """The text cut into runs, each flagged when its characters force UCS-2."""
    flagged = set(ucs2_chars)
    runs: list[tuple[str, bool]] = []
    for ch in text:
        bad = ch in flagged
        if runs and runs[-1][1] == bad:
            runs[-1] = (runs[-1][0] + ch, bad)
        else:
            runs.append((ch, bad))
    return runs


def _content(form: dict[str, Any]) -> store.TemplateContent:
    return store.TemplateContent(
        body=form.get("body", "") or "",
        subject=h.text(form, "subject") or None,
        fold_accents=form.get("fold_accents") == "oui",
    )


async def _editor_context(
    request: web.Request,
    *,
    template: dict[str, Any] | None,
    values: dict[str, Any],
    error: str | None = None,
) -> dict[str, Any]:
    settings = request.app[RUNTIME].settings
    preview = None
    preview_error = None
    if values.get("body"):
        try:
            preview = await store.preview_off_loop(
                values["channel"],
                store.TemplateContent(
                    values["body"], values.get("subject") or None, None, values["fold_accents"]
                ),
                settings,
            )
        except DomainError as exc:
            preview_error = exc.detail
    choices = await people.search(page=1, page_size=PREVIEW_PEOPLE)
    price = Decimal(settings.sms_price_per_part)
    return {
        "template": template,
        "values": values,
        "error": error,
        "preview": preview,
        "preview_error": preview_error,
        "runs": highlight(preview["text"], preview["ucs2_chars"]) if preview else [],
        "people": choices["items"],
        "price_per_part": str(price),
        "encodings_explained": ENCODING_EXPLAINED,
        "cost_per_recipient": str(price * (preview["segments"] if preview else 0)),
        "channel_labels": h.CHANNEL_LABELS,
    }


def _values(form: dict[str, Any], channel: str) -> dict[str, Any]:
    return {
        "name": h.text(form, "name"),
        "channel": channel,
        "subject": h.text(form, "subject"),
        "body": form.get("body", "") or "",
        "fold_accents": form.get("fold_accents") == "oui",
    }


@router.page("GET", "/modeles", MANAGERS, "templates_list.html")
async def templates_list(request: web.Request) -> dict[str, Any]:
    await store.seed_default_templates()
    return {"templates": await store.list_templates(), "channel_labels": h.CHANNEL_LABELS}


@router.page("GET", "/modeles/nouveau", MANAGERS, "template_edit.html")
async def template_new(request: web.Request) -> dict[str, Any]:
    channel = "email" if request.query.get("canal") == "email" else "sms"
    values = {"name": "", "channel": channel, "subject": "", "body": "", "fold_accents": False}
    return await _editor_context(request, template=None, values=values)


@router.page("POST", "/modeles", MANAGERS, "template_edit.html")
async def template_create(request: web.Request) -> web.StreamResponse | dict[str, Any]:
    form = await h.form_data(request)
    channel = "email" if h.text(form, "channel") == "email" else "sms"
    try:
        template = await store.create_template(
            h.text(form, "name"), channel, _content(form), actor=h.actor(request)
        )
    except DomainError as exc:
        return await _editor_context(
            request, template=None, values=_values(form, channel), error=exc.detail
        )
    await h.flash(request, "Modèle enregistré.")
    raise web.HTTPSeeOther(f"/modeles/{template.id}")


def _template_id(request: web.Request) -> int:
    value = h.int_or_none(request.match_info["id"])
    if value is None:
        raise web.HTTPNotFound()
    return value


@router.page("GET", "/modeles/{id}", MANAGERS, "template_edit.html")
async def template_edit(request: web.Request) -> dict[str, Any]:
    template = await store.get_template(_template_id(request))
    values = {
        "name": template["name"],
        "channel": template["channel"],
        "subject": template.get("subject") or "",
        "body": template["body"],
        "fold_accents": template["fold_accents"],
    }
    return await _editor_context(request, template=template, values=values)


@router.page("POST", "/modeles/{id}", MANAGERS, "template_edit.html")
async def template_update(request: web.Request) -> web.StreamResponse | dict[str, Any]:
    template_id = _template_id(request)
    template = await store.get_template(template_id)
    form = await h.form_data(request)
    try:
        updated = await store.update_template(
            template_id, _content(form), actor=h.actor(request), name=h.text(form, "name")
        )
    except DomainError as exc:
        return await _editor_context(
            request,
            template=template,
            values=_values(form, template["channel"]),
            error=exc.detail,
        )
    await h.flash(request, f"Modèle enregistré (version {updated.current_version}).")
    raise web.HTTPSeeOther(f"/modeles/{template_id}")

"""Réponses: the inbox of every reply, with its label and why, read or unread; corrections.

Also the admin's page on the reply model: its cross-validated figures and how many staff
corrections it has learned from.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from campaigns.core.errors import DomainError
from campaigns.replies import inbox
from campaigns.replies.inbox import LABEL_NAMES, InboxFilter
from campaigns.replies.learning import model_figures
from campaigns.staff import ADMINS, ALL_ROLES, MANAGERS
from campaigns.web.keys import RUNTIME
from campaigns.web.pages import helpers as h
from campaigns.web.pages.base import PageRouter

router = PageRouter()

UNREAD_CHOICES = {"": "Toutes", "1": "Non lues", "0": "Lues"}


def _filter(request: web.Request) -> InboxFilter:
    label = request.query.get("etiquette") or None
    unread = {"1": True, "0": False}.get(request.query.get("lues", ""))
    return InboxFilter(
        label=label if label in LABEL_NAMES else None,
        unread=unread,
        campaign_id=h.int_or_none(request.query.get("campagne")),
        page=min(h.query_page(request), 10_000),
    )


@router.page("GET", "/reponses", MANAGERS, "replies.html")
async def inbox_page(request: web.Request) -> dict[str, Any]:
    where = _filter(request)
    page = await inbox.list_replies(h.staff_of(request), where, h.actor(request))
    for item in page["items"]:
        item["received"] = datetime.fromisoformat(item["received_at"])
        probabilities = item["explanation"].get("probabilities") or {}
        item["top"] = sorted(probabilities.items(), key=lambda kv: -kv[1])[:3]
    return {
        "page": page,
        "where": where,
        "labels": LABEL_NAMES,
        "unread_choices": UNREAD_CHOICES,
        "query": request.query,
        "pager": h.pager(request, where.page, page["page_size"], page["total"]),
    }


@router.page("POST", "/reponses/lues", MANAGERS)
async def mark_read(request: web.Request) -> web.StreamResponse:
    form = await h.form_data(request)
    ids = [i for i in (h.int_or_none(v) for v in form.get("ids[]", [])) if i is not None]
    if ids:
        changed = await inbox.mark_read(
            h.staff_of(request), ids, now=h.now(request), actor=h.actor(request)
        )
        await h.flash(request, f"{changed} réponse(s) marquée(s) comme lue(s).")
    raise web.HTTPSeeOther(_back(form))


@router.page("POST", "/reponses/{id}/etiquette", ALL_ROLES)
async def correct(request: web.Request) -> web.StreamResponse:
    form = await h.form_data(request)
    reply_id = h.int_or_none(request.match_info["id"]) or 0
    try:
        result = await inbox.correct_label(
            h.staff_of(request),
            reply_id,
            h.text(form, "label"),
            runtime=request.app[RUNTIME],
            actor=h.actor(request),
        )
    except DomainError as exc:
        await h.flash(request, exc.detail, "error")
    else:
        text = f"Étiquette corrigée : {LABEL_NAMES[result['label']]}."
        if result["label"] == "distress":
            text += " La réponse est dans la file urgence."
        await h.flash(request, text)
    raise web.HTTPSeeOther(_back(form))


def _back(form: dict[str, Any]) -> str:
    target = h.text(form, "suite")
    # Only our own inbox pages: never an address taken from a form as is.
    return target if target.startswith("/reponses") and "//" not in target else "/reponses"


@router.page("GET", "/admin/modele", ADMINS, "reply_model.html")
async def model_page(request: web.Request) -> dict[str, Any]:
    return {"figures": await model_figures(), "labels": LABEL_NAMES}

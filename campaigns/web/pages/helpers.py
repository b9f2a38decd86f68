"""Small helpers the staff pages share: one-shot messages, form reading, pagination, labels."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from aiohttp_session import get_session

from campaigns.core.audit import Actor
from campaigns.core.audit_text import SEGMENT_LABELS as SEGMENT_LABELS
from campaigns.models import Staff
from campaigns.staff import actor_for
from campaigns.web.keys import RUNTIME
from campaigns.web.pages.base import FLASH_KEY, current_page_staff

CHANNEL_LABELS = {"sms": "SMS", "email": "E-mail", "appel": "Appels"}
MESSAGE_STATUS_LABELS = {
    "queued": "en attente",
    "sending": "en cours d'envoi",
    "submitted": "transmis",
    "delivered": "remis",
    "failed": "échec",
    "expired": "expiré",
    "rejected": "refusé",
    "skipped": "écarté",
    "unconfirmed": "non confirmé",
    "cancelled": "annulé",
}
SKIP_REASON_LABELS = {
    "opted_out": "opposition (STOP)",
    "no_address": "aucune adresse utilisable",
    "landline_only": "uniquement un téléphone fixe",
    "duplicate_address": "adresse déjà servie dans cette campagne",
    "render_error": "message impossible à composer",
}
REPLY_LABELS = {
    "opt_out": "désinscription",
    "callback": "demande de rappel",
    "distress": "détresse",
    "thanks": "remerciement",
    "other": "autre",
}


async def flash(request: web.Request, text: str, kind: str = "notice") -> None:
    """A message shown once on the next page (after a redirect)."""
    session = await get_session(request)
    session[FLASH_KEY] = {"text": text, "kind": kind}


def actor(request: web.Request) -> Actor:
    return actor_for(current_page_staff(request))


def staff_of(request: web.Request) -> Staff:
    return current_page_staff(request)


def now(request: web.Request) -> datetime:
    return request.app[RUNTIME].clock()


async def form_data(request: web.Request) -> dict[str, Any]:
    """The posted form as a plain dict; repeated fields become lists under `name[]`."""
    form = await request.post()
    data: dict[str, Any] = {}
    for key in form:
        values = form.getall(key)
        data[key] = values if key.endswith("[]") else values[-1]
    return data


def text(form: dict[str, Any], name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


# Ids and page numbers fit PostgreSQL's INTEGER: beyond, a value names nothing (and
# would make the database raise, a 500, rather than find nothing, a 404).
_INT32_MAX = 2**31 - 1


def int_or_none(value: str | None) -> int | None:
    if value is None or not str(value).strip():
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        return None
    return number if -_INT32_MAX <= number <= _INT32_MAX else None


def query_page(request: web.Request) -> int:
    return max(int_or_none(request.query.get("page")) or 1, 1)


@dataclass(frozen=True)
class Pager:
    """Previous and next links that keep the other query parameters."""

    page: int
    pages: int
    total: int
    prev_url: str | None
    next_url: str | None


def pager(request: web.Request, page: int, page_size: int, total: int) -> Pager:
    pages = max(math.ceil(total / page_size), 1)
    params = {k: v for k, v in request.query.items() if k != "page" and v}

    def url(number: int) -> str:
        return f"{request.path}?{urlencode({**params, 'page': number})}"

    return Pager(
        page=page,
        pages=pages,
        total=total,
        prev_url=url(page - 1) if page > 1 else None,
        next_url=url(page + 1) if page < pages else None,
    )

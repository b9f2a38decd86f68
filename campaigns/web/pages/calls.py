"""Appels: a caller's calls, « Prendre l'appel suivant », the call sheet and its outcome.

Every caller role works here, volunteers included; a volunteer works nowhere else. The
sheet shows what `calls.sheet.call_sheet` gives a caller (name, numbers, script, the
notes of this campaign) and nothing of the register: no birth date, address or segment.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from campaigns.calls import queries as call_queries
from campaigns.calls import taking
from campaigns.calls.callers import call_campaign, callers_of, set_callers
from campaigns.calls.outcomes import ORIENTATIONS, OUTCOME_LABELS, OutcomeRequest
from campaigns.core.errors import DomainError, Invalid, NotFound
from campaigns.models import CallStatus
from campaigns.rules.queues import QUEUE_LABELS
from campaigns.staff import CALLERS, MANAGERS, QUEUES, is_manager
from campaigns.web.keys import RUNTIME
from campaigns.web.pages import helpers as h
from campaigns.web.pages.base import PageRouter

router = PageRouter()
# A need is either oriented to a partner or opened as a situation in a queue: one choice,
# the queues prefixed so that both fit one <select>.
QUEUE_PREFIX = "file:"
STATUS_LABELS = {
    CallStatus.TODO.value: "à faire",
    CallStatus.CLAIMED.value: "en cours",
    CallStatus.RETRY.value: "à rappeler",
    CallStatus.DONE.value: "terminé",
    CallStatus.INJOIGNABLE.value: "injoignable",
    CallStatus.CANCELLED.value: "annulé",
}
ROLE_LABELS = {
    "admin": "administrateur·rice",
    "coordinator": "coordinateur·rice",
    "caseworker": "travailleur·se social·e",
    "benevole": "bénévole",
}
WEEKDAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
MONTHS = (
    "janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
    "octobre", "novembre", "décembre",
)  # fmt: skip


def when_fr(moment: datetime, now: datetime, tz: ZoneInfo) -> str:
    """ "aujourd'hui à 14 h 00", "mardi à 14 h 00", "lundi 16 mars à 9 h 30" (local time)."""
    local, today = moment.astimezone(tz), now.astimezone(tz).date()
    hour = f"{local.hour} h {local.minute:02d}"
    days = (local.date() - today).days
    if days == 0:
        return f"aujourd'hui à {hour}"
    day = WEEKDAYS[local.weekday()]
    if 0 < days < 7:
        return f"{day} à {hour}"
    return f"{day} {local.day} {MONTHS[local.month - 1]} à {hour}"


def _path_id(request: web.Request) -> int:
    value = h.int_or_none(request.match_info["id"])
    if value is None:
        raise web.HTTPNotFound()
    return value


@router.page("GET", "/appels", CALLERS, "calls.html")
async def calls_page(request: web.Request) -> dict[str, Any]:
    staff = h.staff_of(request)
    now = h.now(request)
    mine = await call_queries.my_calls(staff, now)
    tz = request.app[RUNTIME].settings.tz
    for row in mine["later"]:
        row["when"] = when_fr(datetime.fromisoformat(row["due_at"]), now, tz)
    return {**mine, "status_labels": STATUS_LABELS, "outcome_labels": OUTCOME_LABELS}


@router.page("POST", "/appels/suivant", CALLERS)
async def take_next(request: web.Request) -> web.StreamResponse:
    staff = h.staff_of(request)
    form = await h.form_data(request)
    campaign_id = h.int_or_none(h.text(form, "campaign_id"))
    # Atomic, as for escalations: two callers pressing together get two different calls.
    # The claim is audited here, the view of the sheet when the next page opens it.
    task = await taking.claim_next(staff, h.now(request), campaign_id)
    if task is None:
        await h.flash(request, "Aucun appel à prendre pour le moment.")
        raise web.HTTPSeeOther("/appels")
    raise web.HTTPSeeOther(f"/appels/{task.id}")


@router.page("GET", "/appels/{id}", CALLERS, "call.html")
async def call_page(request: web.Request) -> dict[str, Any]:
    staff = h.staff_of(request)
    # NotFound (someone else's call, for a volunteer) becomes a 404; the view is audited.
    sheet = await call_queries.sheet(staff, _path_id(request), request.app[RUNTIME])
    assignee = sheet["assignee"]
    mine = assignee is not None and assignee["id"] == staff.id
    open_ = sheet["status"] in (CallStatus.TODO, CallStatus.RETRY, CallStatus.CLAIMED)
    in_hand = sheet["status"] == CallStatus.CLAIMED and mine
    return {
        "s": sheet,
        "status_label": STATUS_LABELS.get(sheet["status"], sheet["status"]),
        "in_hand": in_hand,
        # A manager may note a call they did not take (a call made from the office phone).
        "can_record": in_hand or (open_ and is_manager(staff)),
        "can_release": sheet["status"] == CallStatus.CLAIMED and (mine or is_manager(staff)),
        "queues": {q: QUEUE_LABELS.get(q, q) for q in QUEUES},
        "queue_prefix": QUEUE_PREFIX,
    }


def outcome_request(form: dict[str, Any]) -> OutcomeRequest:
    """The form's choice as the domain takes it: the need's choice only with a need."""
    outcome = h.text(form, "outcome")
    if not outcome:
        raise DomainError("Choisissez l'issue de l'appel.")
    need = h.text(form, "besoin")
    orientation = queue = None
    if outcome == "joint_besoin":
        if not need:
            raise DomainError(
                "Un besoin s'oriente vers un partenaire ou s'ouvre dans une file : choisissez."
            )
        if need.startswith(QUEUE_PREFIX):
            queue = need[len(QUEUE_PREFIX) :]
        else:
            orientation = need
    return OutcomeRequest(outcome, orientation, queue, h.text(form, "note") or None)


def confirmation(
    name: str, task: dict[str, Any], request: OutcomeRequest, now: datetime, tz: ZoneInfo
) -> str:
    """What the caller reads back on /appels once the outcome is recorded (`task` as now)."""
    head = f"Appel à {name} noté"
    if task["status"] == CallStatus.RETRY:
        said = OUTCOME_LABELS[request.outcome].lower()
        due = datetime.fromisoformat(task["due_at"])
        return f"{head} : {said}. Rappel prévu {when_fr(due, now, tz)}."
    if task["status"] == CallStatus.INJOIGNABLE:
        return (
            f"{head} : c'était la dernière tentative, la personne est injoignable. "
            "Les coordinateur·rices organisent une visite ou appellent son contact d'urgence."
        )
    if request.orientation:
        return f"{head} : besoin orienté vers « {ORIENTATIONS[request.orientation]} »."
    if request.queue:
        label = QUEUE_LABELS.get(request.queue, request.queue)
        return f"{head} : une situation est ouverte dans la file « {label} »."
    if request.outcome == "faux_numero":
        return f"{head} : faux numéro, les coordonnées seront vérifiées."
    if request.outcome == "refus_appels":
        return f"{head} : la personne ne sera plus appelée."
    return f"{head} : joint·e, rien à signaler."


@router.page("POST", "/appels/{id}/issue", CALLERS)
async def record(request: web.Request) -> web.StreamResponse:
    staff = h.staff_of(request)
    runtime = request.app[RUNTIME]
    task_id = _path_id(request)
    form = await h.form_data(request)
    try:
        wanted = outcome_request(form)
        task = await call_queries.outcome(staff, task_id, wanted, runtime)
    except NotFound:
        raise
    except DomainError as exc:
        await h.flash(request, exc.detail, "error")
        raise web.HTTPSeeOther(f"/appels/{task_id}") from None
    name = await call_queries.person_name(task["person_id"])
    await h.flash(request, confirmation(name, task, wanted, runtime.clock(), runtime.settings.tz))
    raise web.HTTPSeeOther("/appels")


@router.page("POST", "/appels/{id}/reposer", CALLERS)
async def release(request: web.Request) -> web.StreamResponse:
    staff = h.staff_of(request)
    task_id = _path_id(request)
    try:
        await call_queries.release(staff, task_id, request.app[RUNTIME])
    except NotFound:
        raise
    except DomainError as exc:
        await h.flash(request, exc.detail, "error")
        raise web.HTTPSeeOther(f"/appels/{task_id}") from None
    await h.flash(request, "Appel reposé : il reste à faire.")
    raise web.HTTPSeeOther("/appels")


# --- coverage of a call campaign, and who calls: the coordinators' side ----------------


@router.page("GET", "/campagnes/{id}/couverture", MANAGERS, "coverage.html")
async def coverage_page(request: web.Request) -> web.StreamResponse | dict[str, Any]:
    staff = h.staff_of(request)
    campaign_id = _path_id(request)
    try:
        campaign = await call_campaign(campaign_id)
    except Invalid as exc:
        # An SMS or e-mail campaign has no calls: its page says so.
        await h.flash(request, exc.detail, "error")
        raise web.HTTPSeeOther(f"/campagnes/{campaign_id}") from None
    # Audited: the lists name people of the register.
    data = await call_queries.coverage(staff, campaign_id, request.app[RUNTIME])
    callers = await callers_of(campaign_id)
    return {
        "campaign": campaign,
        "cov": data,
        "callers": callers,
        "callers_text": "\n".join(str(c["email"]) for c in callers),
        "status_labels": STATUS_LABELS,
        "role_labels": ROLE_LABELS,
    }


@router.page("POST", "/campagnes/{id}/appelants", MANAGERS)
async def set_callers_page(request: web.Request) -> web.StreamResponse:
    campaign_id = _path_id(request)
    form = await h.form_data(request)
    # One address a line, or separated by commas or semicolons, as pasted from a mail.
    emails = re.split(r"[\s,;]+", h.text(form, "emails"))
    try:
        named = await set_callers(campaign_id, [e for e in emails if e], actor=h.actor(request))
    except NotFound:
        raise
    except DomainError as exc:
        await h.flash(request, exc.detail, "error")
    else:
        await h.flash(request, f"Appelant·es enregistré·es : {len(named)}.")
    raise web.HTTPSeeOther(f"/campagnes/{campaign_id}/couverture")

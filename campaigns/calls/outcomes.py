"""What a caller records after a call, and what follows from it.

- reached (`joint_rien`, `joint_besoin`): done; a need is oriented (home help, meals,
  shopping, psychological support, a health partner) or opened as an escalation;
- no answer (`pas_de_reponse`, `messagerie`): tried again later at another time of day,
  in opening hours, up to `call_max_attempts`; after the last one the person is
  "injoignable" and the coordinators get a follow-up (a visit, or the emergency contact);
- `faux_numero`: the number is wrong: the coordinators check the person's details;
- `refus_appels`: the person's numbers are opted out of calls, their open calls cancelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from campaigns.calls.generation import OPEN_STATUSES, cancel_open_tasks
from campaigns.calls.optouts import opt_out_of_calls
from campaigns.calls.taking import task_for
from campaigns.core import audit
from campaigns.core.clock import as_utc
from campaigns.core.errors import Conflict, Forbidden, Invalid
from campaigns.core.runtime import Runtime
from campaigns.escalations.from_calls import escalate_person
from campaigns.models import (
    CallOutcome,
    CallStatus,
    CallTask,
    Campaign,
    CampaignRun,
    CampaignStatus,
    Membership,
    Person,
    Staff,
)
from campaigns.rules.call_retry import next_attempt
from campaigns.rules.queues import opening_window
from campaigns.staff import QUEUES, actor_for, is_manager

ORIENTATIONS: dict[str, str] = {
    "aide_domicile": "Aide à domicile",
    "portage_repas": "Portage de repas",
    "courses": "Courses",
    "soutien_psychologique": "Soutien psychologique",
    "partenaire_sante": "Partenaire santé",
}
OUTCOME_LABELS: dict[str, str] = {
    "joint_rien": "Joint·e, rien à signaler",
    "joint_besoin": "Joint·e, besoin",
    "pas_de_reponse": "Pas de réponse",
    "messagerie": "Messagerie, message laissé",
    "faux_numero": "Faux numéro",
    "refus_appels": "Ne souhaite plus être appelé·e",
}
NO_ANSWER = (CallOutcome.PAS_DE_REPONSE, CallOutcome.MESSAGERIE)
MAX_NOTE = 2000


@dataclass(frozen=True)
class OutcomeRequest:
    outcome: str
    orientation: str | None = None
    queue: str | None = None
    note: str | None = None


def _check(request: OutcomeRequest) -> CallOutcome:
    try:
        outcome = CallOutcome(request.outcome)
    except ValueError:
        raise Invalid(
            "Issue inconnue : " + ", ".join(o.value for o in CallOutcome), code="bad_outcome"
        ) from None
    if request.orientation is not None and request.orientation not in ORIENTATIONS:
        raise Invalid("Orientation inconnue : " + ", ".join(ORIENTATIONS), code="bad_orientation")
    if request.queue is not None and request.queue not in QUEUES:
        raise Invalid("File inconnue : " + ", ".join(QUEUES), code="unknown_queue")
    if outcome == CallOutcome.JOINT_BESOIN and not (request.orientation or request.queue):
        raise Invalid(
            "Un besoin s'oriente (orientation) ou s'ouvre dans une file (queue).",
            code="missing_orientation",
        )
    if outcome != CallOutcome.JOINT_BESOIN and (request.orientation or request.queue):
        raise Invalid("Orientation et file ne vont qu'avec « joint_besoin ».", code="bad_outcome")
    if request.note is not None and len(request.note) > MAX_NOTE:
        raise Invalid(f"Note trop longue ({MAX_NOTE} caractères au plus).", code="note_too_long")
    return outcome


async def record_outcome(
    staff: Staff, task_id: int, request: OutcomeRequest, runtime: Runtime
) -> CallTask:
    """Record one call's outcome on a task the caller holds; returns the task as it is now."""
    outcome = _check(request)
    task = await task_for(staff, task_id)
    if task.status not in (CallStatus.CLAIMED, *OPEN_STATUSES):
        raise Conflict("Cet appel est déjà terminé.", code="call_closed")
    if task.status != CallStatus.CLAIMED and not is_manager(staff):
        raise Conflict("Prenez l'appel avant d'en noter l'issue.", code="not_claimed")
    if task.assignee_id not in (None, staff.id) and not is_manager(staff):
        raise Forbidden("Cet appel est pris par un·e collègue.")
    now = runtime.clock()
    entry: dict[str, Any] = {
        "at": now.isoformat(),
        "by": staff.name or staff.email,
        "outcome": outcome.value,
        "text": (request.note or "").strip(),
    }
    changes: dict[str, Any] = {
        "attempts": task.attempts + 1,
        "last_attempt_at": now,
        "outcome": outcome.value,
        "notes": [*(task.notes or []), entry],
        "updated_at": now,
        "claimed_at": None,
    }
    follow_up: str | None = None
    if outcome in NO_ANSWER:
        if task.attempts + 1 >= runtime.settings.call_max_attempts:
            changes.update(status=CallStatus.INJOIGNABLE, completed_at=now)
            follow_up = "injoignable"
        else:
            changes.update(status=CallStatus.RETRY, due_at=_retry_at(task, now, runtime))
    else:
        changes.update(status=CallStatus.DONE, completed_at=now, completed_by_id=staff.id)
        if outcome == CallOutcome.JOINT_BESOIN:
            changes["orientation"] = request.orientation or f"file:{request.queue}"
        if outcome == CallOutcome.FAUX_NUMERO:
            follow_up = "faux_numero"
    # Only the holder's claim is turned into an outcome: a second submit finds it closed.
    allowed = [CallStatus.CLAIMED, *OPEN_STATUSES]
    if not await CallTask.filter(id=task.id, status__in=allowed).update(**changes):
        raise Conflict("Cet appel vient d'être terminé.", code="call_closed")
    actor = actor_for(staff)
    await audit.record(
        actor,
        "call.outcome",
        "call_task",
        task.id,
        outcome=outcome.value,
        orientation=request.orientation,
        queue=request.queue,
        attempts=task.attempts + 1,
    )
    person = await Person.get_or_none(id=task.person_id) if task.person_id else None
    if person is not None:
        await _consequences(task, person, outcome, request, follow_up, staff, runtime)
    await _complete_if_done(task, now)
    return await CallTask.get(id=task.id)


async def _complete_if_done(task: CallTask, now: datetime) -> None:
    """A cycle with no call left is over; a one-off call campaign is then completed.

    A recurring one waits for its next cycle; a journey's call step stays open, since
    failed numbers and callbacks may still add calls to it.
    """
    if await CallTask.filter(
        run_id=task.run_id, status__in=[*OPEN_STATUSES, CallStatus.CLAIMED]
    ).exists():
        return
    await CampaignRun.filter(id=task.run_id, completed_at=None).update(completed_at=now)
    await Campaign.filter(
        id=task.campaign_id,
        status=CampaignStatus.RUNNING,
        recurrence_days__isnull=True,
        parent_id__isnull=True,
    ).update(status=CampaignStatus.COMPLETED, completed_at=now)


def _retry_at(task: CallTask, now: datetime, runtime: Runtime) -> datetime:
    earlier = [
        datetime.fromisoformat(n["at"])
        for n in task.notes or []
        if n.get("outcome") in NO_ANSWER and n.get("at")
    ]
    at = next_attempt(
        [*earlier, now],
        opening_window(runtime.settings),
        min_delay=timedelta(hours=runtime.settings.call_retry_hours),
    )
    return as_utc(at)


async def _consequences(
    task: CallTask,
    person: Person,
    outcome: CallOutcome,
    request: OutcomeRequest,
    follow_up: str | None,
    staff: Staff,
    runtime: Runtime,
) -> None:
    actor = actor_for(staff)
    now = runtime.clock()
    await Person.filter(id=person.id).update(last_contacted_at=now)
    if outcome == CallOutcome.JOINT_BESOIN and request.queue:
        note = "Besoin repéré lors d'un appel." + (
            f" Note de l'appelant·e : {request.note.strip()}" if request.note else ""
        )
        escalation = await escalate_person(
            person.id, request.queue, note, actor=actor, runtime=runtime
        )
        await CallTask.filter(id=task.id).update(escalation_id=escalation.id)
    elif outcome == CallOutcome.REFUS_APPELS:
        numbers = [n for n in (person.mobile, person.landline) if n]
        await opt_out_of_calls(numbers, actor=actor, source="appel", task_id=task.id)
        for campaign_id in set(
            await CallTask.filter(person_id=person.id, status__in=list(OPEN_STATUSES)).values_list(
                "campaign_id", flat=True
            )
        ):
            await cancel_open_tasks(
                int(str(campaign_id)), keep_run=None, now=now, person_ids=[person.id]
            )
    elif follow_up is not None:
        escalation = await escalate_person(
            person.id, "suivi", await _follow_up_note(person, follow_up, task), actor=actor,
            runtime=runtime,
        )  # fmt: skip
        await CallTask.filter(id=task.id).update(escalation_id=escalation.id)


async def _follow_up_note(person: Person, reason: str, task: CallTask) -> str:
    fragile = await Membership.filter(person_id=person.id, segment="registre_fragiles").first()
    contact = fragile.emergency_contact if fragile else None
    care = fragile.home_care_service if fragile else None
    if reason == "faux_numero":
        head = "Faux numéro lors d'un appel : vérifier les coordonnées de la personne."
    else:
        head = (
            f"Injoignable après {task.attempts + 1} tentative(s) d'appel : "
            "visite à domicile ou appel au contact d'urgence."
        )
    extra = []
    if contact:
        extra.append(f"Contact d'urgence : {contact}.")
    if care:
        extra.append(f"Service d'aide à domicile : {care}.")
    return " ".join([head, *extra])

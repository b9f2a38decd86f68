"""What caseworkers do with an escalation: take it (or the next one), note, snooze, resolve, reopen.

"Next" claims atomically: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, a conditional
``UPDATE`` checked by its row count on SQLite.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from campaigns.core import audit
from campaigns.core.db import on_postgres
from campaigns.core.errors import Conflict, Invalid
from campaigns.core.runtime import Runtime
from campaigns.escalations.access import (
    get_escalation,
    is_manager,
    is_past_follow_up,
    may_act,
    require_queue,
)
from campaigns.escalations.lifecycle import (
    ACTIVE_STATUSES,
    STATUS_LABELS,
    as_utc,
    open_key_for,
    utc_now,
)
from campaigns.escalations.reading import by_urgency
from campaigns.models import Escalation, EscalationNote, EscalationStatus, Role, Staff
from campaigns.rules.queues import OUTCOMES, compute_due_at, opening_window, rule_for
from campaigns.staff import actor_for

__all__ = ["MAX_NOTE", "add_note", "claim", "claim_next", "reopen", "resolve", "snooze"]

S = EscalationStatus
MAX_SNOOZE = timedelta(days=366)
MAX_NOTE = 5000
_NEXT_BATCH = 10
_NEXT_ROUNDS = 5


async def claim(staff: Staff, escalation_id: int, runtime: Runtime) -> Escalation:
    """Take an escalation in hand (open or snoozed, unassigned or already one's own)."""
    escalation = await get_escalation(staff, escalation_id, now=utc_now(runtime))
    if escalation.status == S.CLAIMED and escalation.assignee_id == staff.id:
        return escalation
    if escalation.status not in (S.OPEN, S.SNOOZED):
        raise Conflict(
            f"Impossible de prendre une situation « {STATUS_LABELS[escalation.status]} »"
        )
    holder = escalation.assignee_id
    if holder not in (None, staff.id) and not is_manager(staff):
        raise Conflict("Cette situation est suivie par un·e collègue", code="assigned")
    now = utc_now(runtime)
    guard = Q(assignee_id__isnull=True) if holder is None else Q(assignee_id=holder)
    changed = await Escalation.filter(guard, id=escalation.id, status=escalation.status).update(
        status=S.CLAIMED, assignee_id=staff.id, claimed_at=now, snoozed_until=None, updated_at=now
    )
    if changed != 1:
        raise Conflict("La situation vient d'être prise par quelqu'un d'autre", code="taken")
    await audit.record(actor_for(staff), "escalation.claim", "escalation", escalation.id)
    return await Escalation.get(id=escalation.id)


async def claim_next(staff: Staff, queue: str, runtime: Runtime) -> Escalation | None:
    """Claim the most urgent open escalation of ``queue`` that is unassigned or one's own.

    Two people pressing "next" at once never get the same one. None when nothing waits.
    """
    require_queue(staff, queue)
    now = utc_now(runtime)
    if on_postgres():
        claimed_id = await _claim_next_locking(staff, queue, now)
    else:
        claimed_id = await _claim_next_conditional(staff, queue, now)
    if claimed_id is None:
        return None
    await audit.record(
        actor_for(staff), "escalation.claim", "escalation", claimed_id, via="next", queue=queue
    )
    return await Escalation.get(id=claimed_id)


def _claimable(staff: Staff, queue: str) -> QuerySet[Escalation]:
    return Escalation.filter(
        Q(assignee_id__isnull=True) | Q(assignee_id=staff.id), queue=queue, status=S.OPEN
    )


async def _claim_next_locking(staff: Staff, queue: str, now: datetime) -> int | None:
    # Rows another transaction holds are skipped, not waited for: each caseworker gets
    # the most urgent row nobody else is taking at that instant.
    async with in_transaction():
        row = (
            await by_urgency(_claimable(staff, queue), now)
            .select_for_update(skip_locked=True)
            .limit(1)
        )
        if not row:
            return None
        changed = (
            await _claimable(staff, queue)
            .filter(id=row[0].id)
            .update(status=S.CLAIMED, assignee_id=staff.id, claimed_at=now, updated_at=now)
        )
        return row[0].id if changed == 1 else None


async def _claim_next_conditional(staff: Staff, queue: str, now: datetime) -> int | None:
    # SQLite has no row locks: the UPDATE only succeeds while the row is still claimable,
    # and its row count tells who won; a loser moves on to the next candidate.
    for _ in range(_NEXT_ROUNDS):
        ids = (
            await by_urgency(_claimable(staff, queue), now)
            .limit(_NEXT_BATCH)
            .values_list("id", flat=True)
        )
        if not ids:
            return None
        for candidate in (int(str(i)) for i in ids):
            changed = (
                await _claimable(staff, queue)
                .filter(id=candidate)
                .update(status=S.CLAIMED, assignee_id=staff.id, claimed_at=now, updated_at=now)
            )
            if changed == 1:
                return candidate
    return None


async def add_note(staff: Staff, escalation_id: int, text: str, runtime: Runtime) -> EscalationNote:
    escalation = await get_escalation(staff, escalation_id, now=utc_now(runtime))
    text = text.strip()
    if not text:
        raise Invalid("La note est vide")
    if len(text) > MAX_NOTE:
        raise Invalid(f"La note dépasse {MAX_NOTE} caractères")
    note = await EscalationNote.create(
        escalation_id=escalation.id,
        author_id=staff.id,
        author_label=staff.name or staff.email,
        text=text,
    )
    await audit.record(actor_for(staff), "escalation.note", "escalation", escalation.id)
    return note


async def snooze(staff: Staff, escalation_id: int, until: datetime, runtime: Runtime) -> Escalation:
    """Put aside until a callback date; it comes back open then (see ``wake_snoozed``)."""
    escalation = await get_escalation(staff, escalation_id, now=utc_now(runtime))
    may_act(staff, escalation)
    if escalation.status == S.RESOLVED:
        raise Conflict("Une situation clôturée ne peut pas être mise en attente")
    now = utc_now(runtime)
    if until.tzinfo is None:
        until = until.replace(tzinfo=runtime.settings.tz)
    until = as_utc(until)
    if until <= now:
        raise Invalid("La date de rappel doit être dans le futur")
    if until > now + MAX_SNOOZE:
        raise Invalid("La date de rappel doit être dans l'année qui vient")
    # The one who snoozes it gets it back at the callback date (continuity).
    assignee_id = escalation.assignee_id
    if assignee_id is None and staff.role is Role.CASEWORKER:
        assignee_id = staff.id
    changed = await Escalation.filter(id=escalation.id, status__in=list(ACTIVE_STATUSES)).update(
        status=S.SNOOZED, snoozed_until=until, assignee_id=assignee_id, updated_at=now
    )
    if changed != 1:
        raise Conflict("La situation vient d'être clôturée")
    await audit.record(actor_for(staff), "escalation.snooze", "escalation", escalation.id)
    return await Escalation.get(id=escalation.id)


async def resolve(
    staff: Staff,
    escalation_id: int,
    outcome: str,
    runtime: Runtime,
    *,
    note: str | None = None,
) -> Escalation:
    """Close with an outcome from ``OUTCOMES``; the (person, queue) is free for a new one."""
    if outcome not in OUTCOMES:
        raise Invalid("Issue inconnue : attendu " + ", ".join(OUTCOMES), code="bad_outcome")
    escalation = await get_escalation(staff, escalation_id, now=utc_now(runtime))
    may_act(staff, escalation)
    if escalation.status == S.RESOLVED:
        raise Conflict("La situation est déjà clôturée")
    now = utc_now(runtime)
    async with in_transaction():
        changed = await Escalation.filter(
            id=escalation.id, status__in=list(ACTIVE_STATUSES)
        ).update(
            status=S.RESOLVED,
            outcome=outcome,
            open_key=None,
            resolved_at=now,
            resolved_by_id=staff.id,
            snoozed_until=None,
            updated_at=now,
        )
        if changed != 1:
            raise Conflict("La situation vient d'être clôturée")
        if note and note.strip():
            await EscalationNote.create(
                escalation_id=escalation.id,
                author_id=staff.id,
                author_label=staff.name or staff.email,
                text=note.strip()[:MAX_NOTE],
            )
    await audit.record(
        actor_for(staff), "escalation.resolve", "escalation", escalation.id, outcome=outcome
    )
    return await Escalation.get(id=escalation.id)


async def reopen(staff: Staff, escalation_id: int, runtime: Runtime) -> Escalation:
    """Reopen a resolved escalation by hand; Conflict if that (person, queue) has another open."""
    escalation = await get_escalation(staff, escalation_id, now=utc_now(runtime))
    if escalation.status != S.RESOLVED:
        raise Conflict("Seule une situation clôturée peut être rouverte")
    now = utc_now(runtime)
    # get_escalation let a caseworker through only within the follow-up: past it, reopening
    # (and so reopening the person's record to the queue) is a coordinator's act, traced.
    late = is_past_follow_up(escalation, now)
    rule = rule_for(runtime.settings, escalation.queue)
    key = open_key_for(escalation.person_id, escalation.msisdn, escalation.queue)
    try:
        changed = await Escalation.filter(id=escalation.id, status=S.RESOLVED).update(
            status=S.OPEN,
            open_key=key,
            outcome=None,
            resolved_at=None,
            resolved_by_id=None,
            claimed_at=None,
            overdue_notified_at=None,
            due_at=compute_due_at(rule, now, opening_window(runtime.settings)),
            updated_at=now,
        )
    except IntegrityError:
        raise Conflict(
            "Une autre situation est déjà ouverte pour cette personne dans cette file",
            code="already_open",
        ) from None
    if changed != 1:
        raise Conflict("La situation vient d'être rouverte")
    await audit.record(
        actor_for(staff), "escalation.reopen", "escalation", escalation.id, after_follow_up=late
    )
    return await Escalation.get(id=escalation.id)

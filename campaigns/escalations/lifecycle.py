"""Escalations: replies that need a caseworker, one open per (person, queue), and their life cycle.

``open -> claimed -> resolved``; ``snoozed`` until a callback date, then open again; a
new reply joins the open escalation of its (person, queue), or reopens the latest one
resolved less than ``REOPEN_WITHIN`` before it (its notes and history stay together);
an older one stays closed and a new escalation starts.

One open escalation per (person, queue) is held by the unique ``open_key`` column
(``p<person>:<queue>``, or ``n<msisdn>:<queue>`` for an unknown sender), set while the
escalation is not resolved: concurrent ``escalate()`` calls race on that index and the
loser retries and joins. "Next" claims atomically: ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, a conditional ``UPDATE`` checked by its row count on SQLite.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Case, Q, RawSQL, When
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from campaigns.core import audit
from campaigns.core.audit import Actor
from campaigns.core.db import on_postgres
from campaigns.core.errors import Conflict, Forbidden, Invalid, NotFound
from campaigns.core.runtime import Runtime
from campaigns.escalations import alerts
from campaigns.models import (
    Campaign,
    Escalation,
    EscalationNote,
    EscalationStatus,
    Membership,
    Message,
    Person,
    Reply,
    Role,
    Staff,
)
from campaigns.rules.queues import (
    OUTCOMES,
    PRIORITY_HIGH,
    QUEUE_LABELS,
    compute_due_at,
    opening_window,
    priority_for,
    rule_for,
)
from campaigns.staff import actor_for

__all__ = [
    "ACTIVE_STATUSES",
    "REOPEN_WITHIN",
    "STATUS_LABELS",
    "add_note",
    "claim",
    "claim_next",
    "escalate",
    "escalation_view",
    "flag_overdue",
    "get_escalation",
    "is_overdue",
    "list_escalations",
    "open_key_for",
    "person_history",
    "reopen",
    "require_queue",
    "resolve",
    "snooze",
    "wake_snoozed",
]

log = logging.getLogger(__name__)

S = EscalationStatus
ACTIVE_STATUSES = (S.OPEN, S.CLAIMED, S.SNOOZED)
# Only work that someone should be doing can be late: a snoozed one waits for its date.
_LATE_STATUSES = (S.OPEN, S.CLAIMED)
STATUS_LABELS = {
    S.OPEN: "À traiter",
    S.CLAIMED: "Prise en charge",
    S.SNOOZED: "Rappel programmé",
    S.RESOLVED: "Clôturée",
}
# A reply this soon after a resolution continues the same story: reopen it rather than
# start a new file, so the caseworker sees the earlier notes and outcome.
REOPEN_WITHIN = timedelta(days=30)
MAX_SNOOZE = timedelta(days=366)
MAX_NOTE = 5000
_ESCALATE_ATTEMPTS = 5
_NEXT_BATCH = 10
_NEXT_ROUNDS = 5


# --- helpers ---------------------------------------------------------------------------


def open_key_for(person_id: int | None, msisdn: str | None, queue: str) -> str:
    if person_id is not None:
        return f"p{person_id}:{queue}"
    if not msisdn:
        raise Invalid("Une escalade demande une personne ou un numéro")
    return f"n{msisdn}:{queue}"


def _is_manager(staff: Staff) -> bool:
    return staff.role in (Role.ADMIN, Role.COORDINATOR)


def require_queue(staff: Staff, queue: str) -> None:
    """Forbidden unless ``staff`` may see ``queue`` (managers see all; caseworkers theirs)."""
    if queue not in QUEUE_LABELS:
        raise NotFound(f"File inconnue : {queue}", code="unknown_queue")
    if not _is_manager(staff) and not staff.works(queue):
        raise Forbidden(f"Vous ne travaillez pas la file « {QUEUE_LABELS[queue]} »")


def is_overdue(escalation: Escalation, now: datetime) -> bool:
    return escalation.status in _LATE_STATUSES and escalation.due_at < now


def _late_q(now: datetime) -> Q:
    return Q(status__in=list(_LATE_STATUSES), due_at__lt=_utc(now))


def _utc(at: datetime) -> datetime:
    # SQLite stores datetimes as UTC text and compares filter values as text: a bound
    # value in another zone would compare wrongly, so every instant we filter on is UTC.
    return at.astimezone(UTC)


def _now(runtime: Runtime) -> datetime:
    return _utc(runtime.clock())


def _sorted(qs: QuerySet[Escalation], now: datetime) -> QuerySet[Escalation]:
    """Priority first, then overdue ones, then the oldest: what a caseworker should take."""
    # Literal SQL constants: as bound parameters PostgreSQL would type the CASE as text.
    late = Case(When(_late_q(now), then=RawSQL("1")), default=RawSQL("0"))  # type: ignore[arg-type]
    return qs.annotate(late=late).order_by("-priority", "-late", "created_at", "id")


async def _eligible_referent(person_id: int | None, queue: str) -> Staff | None:
    """The person's référent when an active caseworker who works this queue."""
    if person_id is None:
        return None
    email = await Person.filter(id=person_id).values_list("referent_email", flat=True)
    if not email or not email[0]:
        return None
    staff = await Staff.get_or_none(email=email[0].strip().lower(), active=True)
    if staff is None or staff.role is not Role.CASEWORKER or not staff.works(queue):
        return None
    return staff


async def _still_eligible(staff_id: int | None, queue: str) -> bool:
    if staff_id is None:
        return False
    staff = await Staff.get_or_none(id=staff_id, active=True)
    return staff is not None and (staff.works(queue) or _is_manager(staff))


# --- escalate: a reply reaches a queue -------------------------------------------------


@dataclass(frozen=True)
class _Incoming:
    reply_id: int
    key: str
    queue: str
    priority: int
    due_at: datetime
    received_at: datetime
    multiple: bool
    person_id: int | None
    msisdn: str
    now: datetime
    fresh_due_at: datetime  # the queue's delay counted from now, for a renewed escalation


async def escalate(*, reply: Reply, queue: str, label: str, runtime: Runtime) -> Escalation:
    """Put ``reply`` in ``queue``: join the open escalation, reopen a recent one, or open one.

    Idempotent for a reply already in the escalation (a retried job changes nothing).
    A new or reopened ``urgence`` escalation alerts the queue's caseworkers by e-mail; so
    does a high-priority reply joining one whose due time has passed (it gets a fresh one).
    """
    try:
        rule = rule_for(runtime.settings, queue)
    except ValueError as exc:
        raise Invalid(str(exc), code="unknown_queue") from None
    received = _utc(reply.received_at or runtime.clock())
    now = _now(runtime)
    window = opening_window(runtime.settings)
    incoming = _Incoming(
        reply_id=reply.id,
        key=open_key_for(reply.person_id, reply.msisdn, queue),
        queue=queue,
        priority=priority_for(rule, label),
        due_at=compute_due_at(rule, received, window),
        received_at=received,
        multiple=len(set(reply.candidate_ids or [])) > 1,
        person_id=reply.person_id,
        msisdn=reply.msisdn,
        now=now,
        fresh_due_at=compute_due_at(rule, max(received, now), window),
    )
    for attempt in range(_ESCALATE_ATTEMPTS):
        try:
            async with in_transaction():
                escalation, event = await _escalate_once(incoming)
            break
        except IntegrityError:
            # Another process opened the same (person, queue) first: retry and join it.
            if attempt == _ESCALATE_ATTEMPTS - 1:
                raise
    if event != "unchanged":
        await audit.record(
            Actor.system(), f"escalation.{event}", "escalation", escalation.id, queue=queue
        )
        log.info("reply %s %s escalation %s (%s)", reply.id, event, escalation.id, queue)
    if event in ("create", "reopen") and queue == "urgence":
        await alerts.alert_new_urgence(runtime, escalation)
    elif event == "renew":
        await alerts.alert_renewed(runtime, escalation)
    return escalation


async def _escalate_once(incoming: _Incoming) -> tuple[Escalation, str]:
    current = await Escalation.filter(open_key=incoming.key).select_for_update().first()
    if current is not None:
        return current, await _join(current, incoming)
    # Locked so that two replies racing to reopen it do it once (the loser then joins).
    previous = (
        await _identity(incoming)
        .filter(status=S.RESOLVED)
        .order_by("-resolved_at", "-id")
        .select_for_update()
        .first()
    )
    if previous is not None and incoming.reply_id in (previous.reply_ids or []):
        return previous, "unchanged"
    if (
        previous is not None
        and previous.resolved_at is not None
        and previous.resolved_at >= incoming.received_at - REOPEN_WITHIN
    ):
        return await _reopen_by_reply(previous, incoming), "reopen"
    assignee = await _eligible_referent(incoming.person_id, incoming.queue)
    created = await Escalation.create(
        person_id=incoming.person_id,
        msisdn=incoming.msisdn,
        queue=incoming.queue,
        priority=incoming.priority,
        status=S.OPEN,
        open_key=incoming.key,
        assignee_id=assignee.id if assignee else None,
        due_at=incoming.due_at,
        multiple_candidates=incoming.multiple,
        reply_ids=[incoming.reply_id],
    )
    return created, "create"


def _identity(incoming: _Incoming) -> QuerySet[Escalation]:
    qs = Escalation.filter(queue=incoming.queue)
    if incoming.person_id is not None:
        return qs.filter(person_id=incoming.person_id)
    return qs.filter(person_id__isnull=True, msisdn=incoming.msisdn)


async def _join(escalation: Escalation, incoming: _Incoming) -> str:
    if incoming.reply_id in (escalation.reply_ids or []):
        return "unchanged"
    event = "join"
    escalation.reply_ids = [*(escalation.reply_ids or []), incoming.reply_id]
    escalation.priority = max(escalation.priority, incoming.priority)
    if incoming.priority >= PRIORITY_HIGH and escalation.due_at < incoming.now:
        # A new distress signal on a file already late (and perhaps already flagged): it
        # gets the queue's full delay again, may be flagged again, and is announced anew,
        # rather than sitting behind a due time nobody is watching any more.
        escalation.due_at = incoming.fresh_due_at
        escalation.overdue_notified_at = None
        event = "renew"
    else:
        escalation.due_at = min(escalation.due_at, incoming.due_at)
    escalation.multiple_candidates = escalation.multiple_candidates or incoming.multiple
    if escalation.status == S.SNOOZED:
        # The person wrote again before the callback date: it needs attention now.
        escalation.status = S.OPEN
        escalation.snoozed_until = None
    await escalation.save()
    return event


async def _reopen_by_reply(escalation: Escalation, incoming: _Incoming) -> Escalation:
    previous_outcome = OUTCOMES.get(escalation.outcome or "", escalation.outcome or "—")
    keep_assignee = await _still_eligible(escalation.assignee_id, incoming.queue)
    if not keep_assignee:
        referent = await _eligible_referent(incoming.person_id, incoming.queue)
        escalation.assignee_id = referent.id if referent else None
    escalation.status = S.OPEN
    escalation.open_key = incoming.key  # IntegrityError if a concurrent one opened it
    escalation.priority = incoming.priority
    escalation.due_at = incoming.due_at
    escalation.reply_ids = [*(escalation.reply_ids or []), incoming.reply_id]
    escalation.multiple_candidates = escalation.multiple_candidates or incoming.multiple
    escalation.outcome = None
    escalation.resolved_at = None
    escalation.resolved_by_id = None
    escalation.claimed_at = None
    escalation.snoozed_until = None
    escalation.overdue_notified_at = None
    await escalation.save()
    await EscalationNote.create(
        escalation_id=escalation.id,
        author_id=None,
        author_label="système",
        text=f"Rouverte par une nouvelle réponse (issue précédente : {previous_outcome}).",
    )
    return escalation


# --- reading ---------------------------------------------------------------------------


async def get_escalation(staff: Staff, escalation_id: int) -> Escalation:
    escalation = await Escalation.get_or_none(id=escalation_id)
    if escalation is None:
        raise NotFound("Situation introuvable")
    require_queue(staff, escalation.queue)
    return escalation


_ASSIGNEE_CHOICES = ("me", "none", "all")


async def list_escalations(
    staff: Staff,
    *,
    now: datetime,
    queue: str | None = None,
    status: str | None = None,
    assignee: str | None = None,
    overdue: bool | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Escalation]:
    """What ``staff`` may see, most urgent first (priority, then overdue, then age).

    ``status`` is one status, a comma-separated list, ``all``, or empty for the active
    ones (everything not resolved); ``assignee`` is ``me``, ``none`` or ``all``.
    """
    now = _utc(now)
    qs = Escalation.all()
    if queue:
        require_queue(staff, queue)
        qs = qs.filter(queue=queue)
    elif not _is_manager(staff):
        qs = qs.filter(queue__in=list(staff.queues or []))
    qs = qs.filter(status__in=_parse_statuses(status))
    choice = (assignee or "all").lower()
    if choice not in _ASSIGNEE_CHOICES:
        raise Invalid("assignee : attendu me, none ou all", code="bad_filter")
    if choice == "me":
        qs = qs.filter(assignee_id=staff.id)
    elif choice == "none":
        qs = qs.filter(assignee_id__isnull=True)
    if overdue is True:
        qs = qs.filter(_late_q(now))
    elif overdue is False:
        qs = qs.filter(~_late_q(now))
    return await _sorted(qs, now).offset(offset).limit(limit).prefetch_related("assignee")


def _parse_statuses(text: str | None) -> list[EscalationStatus]:
    if not text:
        return list(ACTIVE_STATUSES)
    if text.strip().lower() == "all":
        return list(S)
    try:
        return [S(item.strip().lower()) for item in text.split(",") if item.strip()]
    except ValueError:
        raise Invalid(
            "status : attendu open, claimed, snoozed, resolved ou all", code="bad_filter"
        ) from None


async def escalation_view(staff: Staff, escalation_id: int, runtime: Runtime) -> dict[str, Any]:
    """The escalation with its notes, replies, the message answered and the person: audited."""
    escalation = await get_escalation(staff, escalation_id)
    await escalation.fetch_related("assignee")
    notes = await EscalationNote.filter(escalation_id=escalation.id).order_by("created_at", "id")
    replies = await Reply.filter(id__in=list(escalation.reply_ids or [])).order_by(
        "received_at", "id"
    )
    person_ids = [escalation.person_id] if escalation.person_id is not None else []
    candidate_ids = sorted({pid for reply in replies for pid in (reply.candidate_ids or [])})
    people = {p.id: p for p in await Person.filter(id__in=[*person_ids, *candidate_ids])}
    actor = actor_for(staff)
    await audit.record(actor, "escalation.view", "escalation", escalation.id)
    shown = [pid for pid in dict.fromkeys([*person_ids, *candidate_ids]) if pid in people]
    await audit.record_many(
        actor, "person.view", "person", shown, via="escalation", escalation_id=escalation.id
    )
    person = people.get(escalation.person_id) if escalation.person_id is not None else None
    return {
        "escalation": escalation,
        "notes": notes,
        "replies": replies,
        "message": await _message_answered(replies),
        "person": await _person_summary(person) if person is not None else None,
        "candidates": [
            {"id": pid, "name": people[pid].display_name} for pid in candidate_ids if pid in people
        ]
        if escalation.multiple_candidates
        else [],
        "now": _now(runtime),
    }


async def person_history(
    staff: Staff,
    escalation: Escalation,
    *,
    messages: int = 10,
    replies: int = 20,
    escalations: int = 10,
) -> dict[str, list[Any]]:
    """The person's campaign messages, replies and other escalations that ``staff`` may see.

    Managers see all of them. A caseworker sees the escalations of the queues they work,
    the replies that fed those (``reply_ids``, ``Reply.escalation_id``) and the campaign
    messages those replies answered: a distress reply sent to ``urgence`` says more about
    the person than a ``rappel`` caseworker needs to know.
    """
    person_id = escalation.person_id
    if person_id is None:
        return {"messages": [], "replies": [], "escalations": []}
    message_qs = Message.filter(person_id=person_id)
    reply_qs = Reply.filter(person_id=person_id)
    earlier = Escalation.filter(person_id=person_id).exclude(id=escalation.id)
    if not _is_manager(staff):
        queues = list(staff.queues or [])
        worked = await Escalation.filter(person_id=person_id, queue__in=queues)
        fed = sorted({rid for e in worked for rid in (e.reply_ids or [])})
        reply_qs = reply_qs.filter(Q(id__in=fed) | Q(escalation_id__in=[e.id for e in worked]))
        answered = await reply_qs.filter(message_id__isnull=False).values_list(
            "message_id", flat=True
        )
        message_qs = message_qs.filter(id__in=sorted(set(answered)))
        earlier = earlier.filter(queue__in=queues)
    return {
        "messages": await message_qs.order_by("-id").limit(messages),
        "replies": await reply_qs.order_by("-received_at", "-id").limit(replies),
        "escalations": await earlier.order_by("-id").limit(escalations),
    }


async def _message_answered(replies: list[Reply]) -> dict[str, Any] | None:
    for reply in reversed(replies):
        if reply.message_id is None:
            continue
        message = await Message.get_or_none(id=reply.message_id)
        if message is None:
            continue
        campaign = await Campaign.get_or_none(id=message.campaign_id)
        return {
            "campaign_id": message.campaign_id,
            "campaign_name": campaign.name if campaign else None,
            "channel": message.channel,
            "text": message.text,
            "sent_at": message.sent_at,
        }
    return None


async def _person_summary(person: Person) -> dict[str, Any]:
    segments = await Membership.filter(person_id=person.id).values_list("segment", flat=True)
    return {
        "id": person.id,
        "civility": person.civility,
        "first_name": person.first_name,
        "last_name": person.last_name,
        "birth_date": person.birth_date,
        "mobile": person.mobile,
        "landline": person.landline,
        "address": person.address,
        "district": person.district,
        "referent_email": person.referent_email,
        "segments": sorted(segments),
    }


# --- caseworker operations -------------------------------------------------------------


async def claim(staff: Staff, escalation_id: int, runtime: Runtime) -> Escalation:
    """Take an escalation in hand (open or snoozed, unassigned or already one's own)."""
    escalation = await get_escalation(staff, escalation_id)
    if escalation.status == S.CLAIMED and escalation.assignee_id == staff.id:
        return escalation
    if escalation.status not in (S.OPEN, S.SNOOZED):
        raise Conflict(
            f"Impossible de prendre une situation « {STATUS_LABELS[escalation.status]} »"
        )
    holder = escalation.assignee_id
    if holder not in (None, staff.id) and not _is_manager(staff):
        raise Conflict("Cette situation est suivie par un·e collègue", code="assigned")
    now = _now(runtime)
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
    now = _now(runtime)
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
            await _sorted(_claimable(staff, queue), now)
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
            await _sorted(_claimable(staff, queue), now)
            .limit(_NEXT_BATCH)
            .values_list("id", flat=True)
        )
        if not ids:
            return None
        for candidate in ids:
            changed = (
                await _claimable(staff, queue)
                .filter(id=candidate)
                .update(status=S.CLAIMED, assignee_id=staff.id, claimed_at=now, updated_at=now)
            )
            if changed == 1:
                return int(candidate)
    return None


def _may_act(staff: Staff, escalation: Escalation) -> None:
    """A caseworker acts on what is theirs or nobody's; managers on anything."""
    if _is_manager(staff) or escalation.assignee_id in (None, staff.id):
        return
    raise Forbidden("Cette situation est suivie par un·e collègue")


async def add_note(staff: Staff, escalation_id: int, text: str, runtime: Runtime) -> EscalationNote:
    escalation = await get_escalation(staff, escalation_id)
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
    escalation = await get_escalation(staff, escalation_id)
    _may_act(staff, escalation)
    if escalation.status == S.RESOLVED:
        raise Conflict("Une situation clôturée ne peut pas être mise en attente")
    now = _now(runtime)
    if until.tzinfo is None:
        until = until.replace(tzinfo=runtime.settings.tz)
    until = _utc(until)
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
    escalation = await get_escalation(staff, escalation_id)
    _may_act(staff, escalation)
    if escalation.status == S.RESOLVED:
        raise Conflict("La situation est déjà clôturée")
    now = _now(runtime)
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
    escalation = await get_escalation(staff, escalation_id)
    if escalation.status != S.RESOLVED:
        raise Conflict("Seule une situation clôturée peut être rouverte")
    now = _now(runtime)
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
    await audit.record(actor_for(staff), "escalation.reopen", "escalation", escalation.id)
    return await Escalation.get(id=escalation.id)


# --- cron ------------------------------------------------------------------------------


async def wake_snoozed(runtime: Runtime, now: datetime | None = None) -> int:
    """Bring back every snoozed escalation whose callback date has come; returns how many.

    Its due time restarts from the callback date under the queue's rule.
    """
    now = _utc(now) if now is not None else _now(runtime)
    window = opening_window(runtime.settings)
    rows = await Escalation.filter(status=S.SNOOZED, snoozed_until__lte=now).values(
        "id", "queue", "snoozed_until"
    )
    woken = 0
    for row in rows:
        due = compute_due_at(rule_for(runtime.settings, row["queue"]), row["snoozed_until"], window)
        woken += await Escalation.filter(id=row["id"], status=S.SNOOZED).update(
            status=S.OPEN, snoozed_until=None, due_at=due, overdue_notified_at=None, updated_at=now
        )
    if woken:
        log.info("%d snoozed escalation(s) back in their queue", woken)
    return woken


async def flag_overdue(runtime: Runtime, now: datetime | None = None) -> int:
    """Flag, once, each open or claimed escalation past its due time and tell the
    coordinators (counts by queue, no personal data); returns how many were flagged."""
    now = _utc(now) if now is not None else _now(runtime)
    async with in_transaction():
        qs = Escalation.filter(_late_q(now), overdue_notified_at__isnull=True)
        if on_postgres():
            qs = qs.select_for_update(skip_locked=True)
        rows = await qs
        ids = [row.id for row in rows]
        if ids:
            await Escalation.filter(id__in=ids).update(overdue_notified_at=now)
    if not ids:
        return 0
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.queue] = counts.get(row.queue, 0) + 1
    await audit.record_many(Actor.system(), "escalation.overdue", "escalation", ids)
    await alerts.alert_overdue(runtime, counts, now)
    log.info("%d escalation(s) flagged overdue", len(ids))
    return len(ids)

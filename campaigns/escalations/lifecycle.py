"""Escalations: replies that need a caseworker, one open per (person, queue), and their life cycle.

``open -> claimed -> resolved``; ``snoozed`` until a callback date, then open again; a
new reply joins the open escalation of its (person, queue), or reopens the latest one
resolved less than ``REOPEN_WITHIN`` before it (its notes and history stay together);
an older one stays closed and a new escalation starts.

One open escalation per (person, queue) is held by the unique ``open_key`` column
(``p<person>:<queue>``, or ``n<msisdn>:<queue>`` for an unknown sender), set while the
escalation is not resolved: concurrent ``escalate()`` calls race on that index and the
loser retries and joins. What staff do with an escalation is in ``operations``, what
they see in ``reading``, the timed changes in ``cron``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from campaigns.core import audit
from campaigns.core.audit import Actor
from campaigns.core.clock import as_utc
from campaigns.core.errors import Invalid
from campaigns.core.runtime import Runtime
from campaigns.escalations import alerts
from campaigns.escalations.assignment import eligible_referent, still_eligible
from campaigns.models import Escalation, EscalationNote, EscalationStatus, Reply
from campaigns.rules.queues import (
    OUTCOMES,
    PRIORITY_HIGH,
    compute_due_at,
    opening_window,
    priority_for,
    rule_for,
)

__all__ = [
    "ACTIVE_STATUSES",
    "LATE_STATUSES",
    "REOPEN_WITHIN",
    "STATUS_LABELS",
    "as_utc",
    "escalate",
    "is_overdue",
    "late_q",
    "open_key_for",
    "utc_now",
]

log = logging.getLogger(__name__)

S = EscalationStatus
ACTIVE_STATUSES = (S.OPEN, S.CLAIMED, S.SNOOZED)
# Only work that someone should be doing can be late: a snoozed one waits for its date.
LATE_STATUSES = (S.OPEN, S.CLAIMED)
STATUS_LABELS = {
    S.OPEN: "À traiter",
    S.CLAIMED: "Prise en charge",
    S.SNOOZED: "Rappel programmé",
    S.RESOLVED: "Clôturée",
}
# A reply this soon after a resolution continues the same story: reopen it rather than
# start a new file, so the caseworker sees the earlier notes and outcome.
REOPEN_WITHIN = timedelta(days=30)
_ESCALATE_ATTEMPTS = 5


# --- keys, due times and instants ------------------------------------------------------


def open_key_for(person_id: int | None, msisdn: str | None, queue: str) -> str:
    if person_id is not None:
        return f"p{person_id}:{queue}"
    if not msisdn:
        raise Invalid("Une escalade demande une personne ou un numéro")
    return f"n{msisdn}:{queue}"


def is_overdue(escalation: Escalation, now: datetime) -> bool:
    return escalation.status in LATE_STATUSES and escalation.due_at < now


def late_q(now: datetime) -> Q:
    return Q(status__in=list(LATE_STATUSES), due_at__lt=as_utc(now))


def utc_now(runtime: Runtime) -> datetime:
    return as_utc(runtime.clock())


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
    received = as_utc(reply.received_at or runtime.clock())
    now = utc_now(runtime)
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
    assignee = await eligible_referent(incoming.person_id, incoming.queue)
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
    keep_assignee = await still_eligible(escalation.assignee_id, incoming.queue)
    if not keep_assignee:
        referent = await eligible_referent(incoming.person_id, incoming.queue)
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

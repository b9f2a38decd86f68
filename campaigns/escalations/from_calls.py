"""Escalations a caller opens: a need heard on the phone, or a person nobody could reach.

They follow the reply-borne ones (one open per person and queue, the queue's due time and
priority, the referent when eligible) but carry a note instead of a reply.
"""

from __future__ import annotations

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from campaigns.core import audit
from campaigns.core.audit import Actor
from campaigns.core.errors import Invalid
from campaigns.core.runtime import Runtime
from campaigns.escalations import alerts
from campaigns.escalations.assignment import eligible_referent
from campaigns.escalations.lifecycle import open_key_for, utc_now
from campaigns.models import Escalation, EscalationNote, EscalationStatus
from campaigns.rules.queues import compute_due_at, opening_window, rule_for

_ATTEMPTS = 3


async def escalate_person(
    person_id: int, queue: str, note: str, *, actor: Actor, runtime: Runtime
) -> Escalation:
    """Open (or join) the person's escalation in `queue`, with `note` as its first word."""
    try:
        rule = rule_for(runtime.settings, queue)
    except ValueError as exc:
        raise Invalid(str(exc), code="unknown_queue") from None
    now = utc_now(runtime)
    due = compute_due_at(rule, now, opening_window(runtime.settings))
    key = open_key_for(person_id, None, queue)
    created = False
    escalation: Escalation | None = None
    for attempt in range(_ATTEMPTS):
        try:
            async with in_transaction():
                escalation = await Escalation.filter(open_key=key).select_for_update().first()
                if escalation is None:
                    referent = await eligible_referent(person_id, queue)
                    escalation = await Escalation.create(
                        person_id=person_id,
                        queue=queue,
                        priority=rule.priority,
                        status=EscalationStatus.OPEN,
                        open_key=key,
                        assignee_id=referent.id if referent else None,
                        due_at=due,
                    )
                    created = True
                else:
                    escalation.priority = max(escalation.priority, rule.priority)
                    escalation.due_at = min(escalation.due_at, due)
                    if escalation.status == EscalationStatus.SNOOZED:
                        escalation.status = EscalationStatus.OPEN
                        escalation.snoozed_until = None
                    await escalation.save()
                await EscalationNote.create(
                    escalation_id=escalation.id,
                    author_id=actor.id,
                    author_label=actor.label,
                    text=note,
                )
            break
        except IntegrityError:
            if attempt == _ATTEMPTS - 1:
                raise
    assert escalation is not None  # the loop either set it or raised
    event = "create" if created else "join"
    await audit.record(actor, f"escalation.{event}", "escalation", escalation.id, queue=queue)
    if created and queue == "urgence":
        await alerts.alert_new_urgence(runtime, escalation)
    return escalation

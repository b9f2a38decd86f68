"""Who may see and act on an escalation: managers everything, caseworkers their queues.

A caseworker sees a situation of a queue they work while it is active and for
``FOLLOW_UP_ACCESS`` (30 days) after it was resolved, the same rule as for the person's
record (campaigns.registry.people.can_view_person): an old situation shows the person's
name, birth date and mobile, which a caseworker no longer needs once the follow-up is over.
"""

from __future__ import annotations

from datetime import UTC, datetime

from campaigns.core.clock import utcnow
from campaigns.core.errors import Forbidden, NotFound
from campaigns.models import Escalation, EscalationStatus, Role, Staff
from campaigns.registry.people import FOLLOW_UP_ACCESS
from campaigns.rules.queues import QUEUE_LABELS

__all__ = ["get_escalation", "is_manager", "is_past_follow_up", "may_act", "require_queue"]

# Escalation ids are 32-bit: a larger one names nothing (and PostgreSQL would refuse it).
_MAX_ID = 2**31 - 1


def is_manager(staff: Staff) -> bool:
    return staff.role in (Role.ADMIN, Role.COORDINATOR)


def require_queue(staff: Staff, queue: str) -> None:
    """Forbidden unless ``staff`` may see ``queue`` (managers see all; caseworkers theirs)."""
    if queue not in QUEUE_LABELS:
        raise NotFound(f"File inconnue : {queue}", code="unknown_queue")
    if not is_manager(staff) and not staff.works(queue):
        raise Forbidden(f"Vous ne travaillez pas la file « {QUEUE_LABELS[queue]} »")


def is_past_follow_up(escalation: Escalation, now: datetime) -> bool:
    """Resolved more than ``FOLLOW_UP_ACCESS`` before ``now``."""
    if escalation.status != EscalationStatus.RESOLVED or escalation.resolved_at is None:
        return False
    return escalation.resolved_at < now.astimezone(UTC) - FOLLOW_UP_ACCESS


async def get_escalation(
    staff: Staff, escalation_id: int, *, now: datetime | None = None
) -> Escalation:
    """The escalation if ``staff`` may see it: queue membership, then the 30-day rule."""
    if not 1 <= escalation_id <= _MAX_ID:
        raise NotFound("Situation introuvable")
    escalation = await Escalation.get_or_none(id=escalation_id)
    if escalation is None:
        raise NotFound("Situation introuvable")
    require_queue(staff, escalation.queue)
    if not is_manager(staff) and is_past_follow_up(escalation, now or utcnow()):
        raise Forbidden(
            "Cette situation est close depuis plus de 30 jours : seul·e un·e coordinateur·rice "
            "peut la consulter ou la rouvrir",
            code="follow_up_over",
        )
    return escalation


def may_act(staff: Staff, escalation: Escalation) -> None:
    """A caseworker acts on what is theirs or nobody's; managers on anything."""
    if is_manager(staff) or escalation.assignee_id in (None, staff.id):
        return
    raise Forbidden("Cette situation est suivie par un·e collègue")

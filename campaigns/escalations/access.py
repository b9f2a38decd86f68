"""Who may see and act on an escalation: managers everything, caseworkers their queues."""

from __future__ import annotations

from campaigns.core.errors import Forbidden, NotFound
from campaigns.models import Escalation, Role, Staff
from campaigns.rules.queues import QUEUE_LABELS

__all__ = ["get_escalation", "is_manager", "may_act", "require_queue"]


def is_manager(staff: Staff) -> bool:
    return staff.role in (Role.ADMIN, Role.COORDINATOR)


def require_queue(staff: Staff, queue: str) -> None:
    """Forbidden unless ``staff`` may see ``queue`` (managers see all; caseworkers theirs)."""
    if queue not in QUEUE_LABELS:
        raise NotFound(f"File inconnue : {queue}", code="unknown_queue")
    if not is_manager(staff) and not staff.works(queue):
        raise Forbidden(f"Vous ne travaillez pas la file « {QUEUE_LABELS[queue]} »")


async def get_escalation(staff: Staff, escalation_id: int) -> Escalation:
    escalation = await Escalation.get_or_none(id=escalation_id)
    if escalation is None:
        raise NotFound("Situation introuvable")
    require_queue(staff, escalation.queue)
    return escalation


def may_act(staff: Staff, escalation: Escalation) -> None:
    """A caseworker acts on what is theirs or nobody's; managers on anything."""
    if is_manager(staff) or escalation.assignee_id in (None, staff.id):
        return
    raise Forbidden("Cette situation est suivie par un·e collègue")

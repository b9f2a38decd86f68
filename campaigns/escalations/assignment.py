"""Who an escalation goes to: the person's référent, while they work the queue."""

from __future__ import annotations

from campaigns.escalations.access import is_manager
from campaigns.models import Person, Role, Staff

__all__ = ["eligible_referent", "still_eligible"]


async def eligible_referent(person_id: int | None, queue: str) -> Staff | None:
    """The person's référent when an active caseworker who works this queue."""
    if person_id is None:
        return None
    emails = await Person.filter(id=person_id).values_list("referent_email", flat=True)
    email = str(emails[0] or "") if emails else ""
    if not email:
        return None
    staff = await Staff.get_or_none(email=email.strip().lower(), active=True)
    if staff is None or staff.role is not Role.CASEWORKER or not staff.works(queue):
        return None
    return staff


async def still_eligible(staff_id: int | None, queue: str) -> bool:
    if staff_id is None:
        return False
    staff = await Staff.get_or_none(id=staff_id, active=True)
    return staff is not None and (staff.works(queue) or is_manager(staff))

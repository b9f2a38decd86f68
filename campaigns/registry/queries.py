"""Read-only views of the register for staff pages and the API: choices, names, a person's file."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from campaigns.core import audit
from campaigns.core.audit import Actor
from campaigns.core.errors import NotFound
from campaigns.models import AuditEvent, Campaign, Escalation, Membership, Message, Person, Reply
from campaigns.models.registry import SEGMENTS

# tortoise types `values_list(..., flat=True)` as rows of tuples: the ignores below say
# they are the plain values they are.


async def segment_codes() -> list[str]:
    """The standard segments first, in their order, then the custom ones in use, sorted."""
    custom: list[str] = (
        await Membership.all()
        .distinct()
        .values_list(  # type: ignore[assignment]
            "segment", flat=True
        )
    )
    return list(SEGMENTS) + sorted(set(custom) - set(SEGMENTS))


async def districts() -> list[str]:
    """Every district someone lives in, sorted."""
    values: list[str] = await (  # type: ignore[assignment]
        Person.filter(district__not_isnull=True).distinct().order_by("district")
    ).values_list("district", flat=True)
    return [d for d in values if d]


async def people_by_id(ids: Iterable[int]) -> dict[int, Person]:
    return {p.id: p for p in await Person.filter(id__in=list(ids))}


async def view_person(person_id: int, *, actor: Actor, via: str) -> Person:
    """A person read to show (part of) their data to a staff member: the view is audited."""
    person = await Person.get_or_none(id=person_id)
    if person is None:
        raise NotFound(f"Personne {person_id} introuvable")
    await audit.record(actor, "person.view", "person", person.id, via=via)
    return person


async def person_file(
    person_id: int,
    *,
    messages: int = 100,
    replies: int = 100,
    escalations: int = 50,
    events: int = 50,
) -> dict[str, Any]:
    """What the service did with one person, newest first: messages, replies, escalations, audit.

    The caller has audited the view (see campaigns.registry.people.view).
    """
    sent = await Message.filter(person_id=person_id).order_by("-id").limit(messages)
    campaign_names = dict(
        await Campaign.filter(id__in={m.campaign_id for m in sent}).values_list("id", "name")
    )
    return {
        "messages": sent,
        "campaign_names": campaign_names,
        "replies": await Reply.filter(person_id=person_id).order_by("-received_at").limit(replies),
        "escalations": await Escalation.filter(person_id=person_id)
        .order_by("-id")
        .limit(escalations),
        "events": await AuditEvent.filter(object_type="person", object_id=str(person_id))
        .order_by("-at", "-id")
        .limit(events),
    }


async def recent_imports(limit: int = 10) -> list[AuditEvent]:
    """The latest register imports, from the audit trail (each carries its report's counts)."""
    return await AuditEvent.filter(action="register.import").order_by("-at", "-id").limit(limit)

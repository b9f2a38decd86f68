"""What staff see of the escalations: their queues most urgent first, one situation in full,
and the person's history as far as the queues they work allow."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tortoise.expressions import Case, Q, RawSQL, When
from tortoise.queryset import QuerySet

from campaigns.core import audit
from campaigns.core.clock import utcnow
from campaigns.core.errors import Invalid
from campaigns.core.runtime import Runtime
from campaigns.escalations.access import get_escalation, is_manager, require_queue
from campaigns.escalations.lifecycle import ACTIVE_STATUSES, as_utc, late_q, utc_now
from campaigns.models import (
    Campaign,
    Escalation,
    EscalationNote,
    EscalationStatus,
    Membership,
    Message,
    Person,
    Reply,
    Staff,
)
from campaigns.registry.people import FOLLOW_UP_ACCESS
from campaigns.staff import actor_for

__all__ = ["by_urgency", "escalation_view", "list_escalations", "person_history"]

S = EscalationStatus


def by_urgency(qs: QuerySet[Escalation], now: datetime) -> QuerySet[Escalation]:
    """Priority first, then overdue ones, then the oldest: what a caseworker should take."""
    # Literal SQL constants: as bound parameters PostgreSQL would type the CASE as text.
    late = Case(When(late_q(now), then=RawSQL("1")), default=RawSQL("0"))  # type: ignore[arg-type]
    return qs.annotate(late=late).order_by("-priority", "-late", "created_at", "id")


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
    now = as_utc(now)
    qs = Escalation.all()
    if queue:
        require_queue(staff, queue)
        qs = qs.filter(queue=queue)
    elif not is_manager(staff):
        qs = qs.filter(queue__in=list(staff.queues or []))
    if not is_manager(staff):
        qs = qs.filter(_within_follow_up(now))
    qs = qs.filter(status__in=_parse_statuses(status))
    choice = (assignee or "all").lower()
    if choice not in _ASSIGNEE_CHOICES:
        raise Invalid("assignee : attendu me, none ou all", code="bad_filter")
    if choice == "me":
        qs = qs.filter(assignee_id=staff.id)
    elif choice == "none":
        qs = qs.filter(assignee_id__isnull=True)
    if overdue is True:
        qs = qs.filter(late_q(now))
    elif overdue is False:
        qs = qs.filter(~late_q(now))
    return await by_urgency(qs, now).offset(offset).limit(limit).prefetch_related("assignee")


def _within_follow_up(now: datetime) -> Q:
    """Active, or resolved within FOLLOW_UP_ACCESS: what a caseworker may still see."""
    return ~Q(status=S.RESOLVED) | Q(resolved_at__gte=as_utc(now) - FOLLOW_UP_ACCESS)


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
    escalation = await get_escalation(staff, escalation_id, now=utc_now(runtime))
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
        "now": utc_now(runtime),
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
    if not is_manager(staff):
        queues = list(staff.queues or [])
        # The 30-day rule holds for the history too: an old situation lends it nothing.
        current = _within_follow_up(utcnow())
        worked = await Escalation.filter(current, person_id=person_id, queue__in=queues)
        fed = sorted({rid for e in worked for rid in (e.reply_ids or [])})
        reply_qs = reply_qs.filter(Q(id__in=fed) | Q(escalation_id__in=[e.id for e in worked]))
        answered = await reply_qs.filter(message_id__isnull=False).values_list(
            "message_id", flat=True
        )
        message_qs = message_qs.filter(id__in=sorted(set(answered)))
        earlier = earlier.filter(current, queue__in=queues)
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

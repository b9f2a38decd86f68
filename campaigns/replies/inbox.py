"""The replies inbox: every reply with its label and why, read or unread, and corrections.

No reply is invisible: whatever the classification did with it (a queue, an opt-out, an
archived thank-you), it stays listed here until a person has read it. A correction of a
label is stored with who and when, audited, and joins the model's training data; a reply
corrected to distress is routed to the urgence queue at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise.expressions import Q

from campaigns.core import audit
from campaigns.core.audit import Actor
from campaigns.core.errors import Forbidden, Invalid, NotFound
from campaigns.core.runtime import Runtime
from campaigns.escalations.lifecycle import escalate
from campaigns.models import Escalation, Person, Reply, ReplyLabel, Role, Staff
from campaigns.rules.classification import LABELS

__all__ = [
    "LABEL_NAMES",
    "InboxFilter",
    "correct_label",
    "corrections_for_training",
    "list_replies",
    "mark_read",
    "unread_older_than",
]

# What a coordinator reads for each label.
LABEL_NAMES = {
    "opt_out": "désinscription",
    "callback": "demande de rappel",
    "distress": "détresse",
    "thanks": "remerciement",
    "other": "autre",
}
PAGE_SIZE = 50
MAX_PAGE = 10_000
# A correction to one of these reaches a queue like a new reply would.
_ROUTE_ON_CORRECTION = {"distress": "urgence", "callback": "rappel", "other": "triage"}


@dataclass(frozen=True)
class InboxFilter:
    label: str | None = None
    unread: bool | None = None
    campaign_id: int | None = None
    page: int = 1

    def __post_init__(self) -> None:
        if self.label is not None and self.label not in LABELS:
            raise Invalid(f"étiquette inconnue « {self.label} » (attendu : {', '.join(LABELS)})")
        if not 1 <= self.page <= MAX_PAGE:
            raise Invalid(f"page hors limites (1 à {MAX_PAGE})")


def _is_manager(staff: Staff) -> bool:
    return staff.role in (Role.ADMIN, Role.COORDINATOR)


async def _may_see(staff: Staff, reply: Reply) -> bool:
    """Managers see every reply; a caseworker those that fed an escalation of their queues."""
    if _is_manager(staff):
        return True
    if reply.escalation_id is None:
        return False
    escalation = await Escalation.get_or_none(id=reply.escalation_id)
    return escalation is not None and staff.works(escalation.queue)


def _item(reply: Reply, people: dict[int, Person]) -> dict[str, Any]:
    person = people.get(reply.person_id or 0)
    return {
        "id": reply.id,
        "received_at": reply.received_at.isoformat(),
        "msisdn": reply.msisdn,
        "text": reply.text,
        "label": reply.label,
        "label_name": LABEL_NAMES.get(reply.label or "", "à classer"),
        "explanation": reply.explanation or {},
        "person_id": reply.person_id,
        "person_name": f"{person.first_name} {person.last_name}".strip() if person else None,
        "campaign_id": reply.campaign_id,
        "escalation_id": reply.escalation_id,
        "read": reply.read_at is not None,
        "read_at": reply.read_at.isoformat() if reply.read_at else None,
        "auto_archived": reply.auto_archived,
    }


async def list_replies(staff: Staff, where: InboxFilter, actor: Actor) -> dict[str, Any]:
    """One page of the inbox, newest first, with the total matching and the unread count."""
    if not _is_manager(staff):
        raise Forbidden("la boîte des réponses est réservée aux coordinateurs")
    query = Reply.filter(processed_at__not_isnull=True)
    if where.label is not None:
        query = query.filter(label=where.label)
    if where.campaign_id is not None:
        query = query.filter(campaign_id=where.campaign_id)
    if where.unread is True:
        query = query.filter(read_at__isnull=True)
    elif where.unread is False:
        query = query.filter(read_at__not_isnull=True)
    total = await query.count()
    replies = (
        await query.order_by("-received_at", "-id")
        .offset((where.page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
    )
    ids = {r.person_id for r in replies if r.person_id is not None}
    people = {p.id: p for p in await Person.filter(id__in=ids)} if ids else {}
    unread = await Reply.filter(processed_at__not_isnull=True, read_at__isnull=True).count()
    await audit.record(
        actor,
        "reply.list",
        "reply",
        None,
        label=where.label,
        unread=where.unread,
        campaign_id=where.campaign_id,
    )
    return {
        "items": [_item(r, people) for r in replies],
        "total": total,
        "unread": unread,
        "page": where.page,
        "page_size": PAGE_SIZE,
    }


async def mark_read(staff: Staff, reply_ids: list[int], *, now: datetime, actor: Actor) -> int:
    """Mark replies read by this person; returns how many changed."""
    if not _is_manager(staff):
        raise Forbidden("la boîte des réponses est réservée aux coordinateurs")
    changed = await Reply.filter(id__in=reply_ids, read_at__isnull=True).update(
        read_at=now, read_by_id=staff.id
    )
    if changed:
        await audit.record(actor, "reply.read", "reply", None, count=changed)
    return changed


async def correct_label(
    staff: Staff, reply_id: int, label: str, *, runtime: Runtime, actor: Actor
) -> dict[str, Any]:
    """Store a staff correction, re-route the reply if it now needs someone, audit it."""
    if label not in LABELS:
        raise Invalid(f"étiquette inconnue « {label} » (attendu : {', '.join(LABELS)})")
    reply = await Reply.get_or_none(id=reply_id)
    if reply is None or not await _may_see(staff, reply):
        raise NotFound("réponse introuvable")
    old = reply.label
    now = runtime.clock()
    await ReplyLabel.create(
        reply_id=reply.id,
        staff_id=staff.id,
        staff_label=actor.label,
        old_label=old,
        new_label=label,
    )
    reply.label = label
    explanation = dict(reply.explanation or {})
    explanation["corrected"] = {"by": actor.label, "at": now.isoformat(), "from": old}
    reply.explanation = explanation
    reply.read_at = reply.read_at or now
    reply.read_by_id = reply.read_by_id or staff.id
    await reply.save(update_fields=["label", "explanation", "read_at", "read_by_id"])
    queue = _ROUTE_ON_CORRECTION.get(label)
    escalation_id = reply.escalation_id
    current = await Escalation.get_or_none(id=escalation_id) if escalation_id else None
    # A reply corrected to distress must reach urgence even if it already fed another queue.
    if queue is not None and (current is None or (label == "distress" and current.queue != queue)):
        escalation = await escalate(reply=reply, queue=queue, label=label, runtime=runtime)
        reply.escalation_id = escalation.id
        await reply.save(update_fields=["escalation_id"])
    await audit.record(actor, "reply.relabel", "reply", reply.id, previous=old, label=label)
    return {"id": reply.id, "label": label, "previous": old, "escalation_id": reply.escalation_id}


async def corrections_for_training() -> list[tuple[str, str]]:
    """(label, text) of every corrected reply, the latest correction winning.

    Erased replies have no text left and teach nothing.
    """
    latest: dict[int, str] = {}
    for row in await ReplyLabel.all().order_by("created_at", "id").values("reply_id", "new_label"):
        latest[int(row["reply_id"])] = str(row["new_label"])
    if not latest:
        return []
    texts = dict(await Reply.filter(id__in=list(latest), text__not="").values_list("id", "text"))
    return [(latest[rid], str(texts[rid])) for rid in sorted(texts)]


async def unread_older_than(now: datetime, age: timedelta = timedelta(days=1)) -> int:
    """Replies nobody has read for longer than `age` (the coordinators' daily summary)."""
    return await Reply.filter(
        Q(read_at__isnull=True) & Q(processed_at__not_isnull=True) & Q(received_at__lt=now - age)
    ).count()

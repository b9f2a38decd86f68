"""Who wrote a reply and which campaign message it answers."""

from __future__ import annotations

from tortoise.expressions import Q

from campaigns.models import Message, MessageStatus, Person, Reply

__all__ = ["match_reply"]

# Messages that never left do not say which campaign a reply answers.
_NOT_SENT = (MessageStatus.QUEUED, MessageStatus.SKIPPED, MessageStatus.CANCELLED)


async def match_reply(reply: Reply) -> None:
    """Set the people holding the sender's number and the campaign message it answers."""
    people = (
        await Person.filter(Q(mobile=reply.msisdn) | Q(landline=reply.msisdn))
        .order_by("id")
        .values_list("id", flat=True)
    )
    message = (
        await Message.filter(address=reply.msisdn, sent_at__isnull=False)
        .exclude(status__in=_NOT_SENT)
        .order_by("-sent_at", "-id")
        .first()
    )
    candidates = [int(pid) for pid in people]  # type: ignore[call-overload]
    if (
        not candidates
        and message is not None
        and message.person_id is not None
        and await Person.exists(id=message.person_id)
    ):
        # The number is no longer on file, but we did write to that person at this number.
        candidates = [message.person_id]
    reply.candidate_ids = candidates
    reply.person_id = candidates[0] if len(candidates) == 1 else None
    reply.message_id = message.id if message is not None else None
    reply.campaign_id = message.campaign_id if message is not None else None

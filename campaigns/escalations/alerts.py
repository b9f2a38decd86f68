"""E-mail alerts to staff about escalations, written without any personal data.

An alert only says that something waits and where to look: no name, phone number or
reply text ever leaves in an e-mail, which may be read on a shared or personal device.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime

from campaigns.core.runtime import Runtime
from campaigns.models import Escalation, Role, Staff
from campaigns.rules.queues import QUEUE_LABELS
from providers.base import EmailRequest, Outcome

__all__ = [
    "RENEWED_SUBJECT",
    "URGENCE_SUBJECT",
    "alert_new_urgence",
    "alert_overdue",
    "alert_renewed",
    "format_local",
    "link_to",
]

log = logging.getLogger(__name__)

URGENCE_SUBJECT = "[Urgence] Nouvelle situation à traiter"
RENEWED_SUBJECT = "[Urgence] Nouvelle réponse urgente dans une situation en retard"


def link_to(runtime: Runtime, queue: str, escalation_id: int | None = None) -> str:
    """The staff page of one escalation (``/situations/<id>``), else of its queue."""
    base = runtime.settings.public_url.rstrip("/")
    if escalation_id is not None:
        return f"{base}/situations/{escalation_id}"
    return f"{base}/files/{queue}"


def format_local(runtime: Runtime, at: datetime) -> str:
    """A date as a CCAS reads it: ``14/07/2026 à 10:00`` in the territory's time zone."""
    local = at.astimezone(runtime.settings.tz)
    return local.strftime("%d/%m/%Y à %H:%M")


async def _active_staff(role: Role, queue: str | None = None) -> list[Staff]:
    staff = await Staff.filter(role=role, active=True).order_by("id")
    # Staff.queues is a JSON list: filtering in Python works alike on both engines,
    # and a CCAS has tens of staff, not thousands.
    return [member for member in staff if queue is None or member.works(queue)]


async def _send_all(
    runtime: Runtime, recipients: Iterable[Staff], subject: str, text: str, ref: str
) -> int:
    sent = 0
    for member in recipients:
        request = EmailRequest(
            message_id=f"{ref}-{member.id}",
            to=member.email,
            sender=runtime.settings.email_sender,
            subject=subject,
            text=text,
        )
        try:
            result = await runtime.email.send_email(request)
        except Exception:
            # An alert that cannot leave must not lose the escalation that caused it.
            log.exception("alert %s to staff %s failed", ref, member.id)
            continue
        if result.outcome is Outcome.SUBMITTED:
            sent += 1
        else:
            log.warning("alert %s to staff %s: %s", ref, member.id, result.reason)
    return sent


async def _queue_watchers(queue: str, ref: str) -> list[Staff]:
    """The queue's active caseworkers; the active coordinators when nobody works it."""
    recipients = await _active_staff(Role.CASEWORKER, queue)
    if recipients:
        return recipients
    # An urgent situation must reach someone: a queue without caseworkers (holidays, a
    # misconfigured account) falls back to the people who supervise every queue.
    log.warning("alert %s: no active caseworker works queue %s, coordinators alerted", ref, queue)
    recipients = await _active_staff(Role.COORDINATOR)
    if not recipients:
        log.warning("alert %s: no active coordinator either, nobody alerted", ref)
    return recipients


async def alert_new_urgence(runtime: Runtime, escalation: Escalation) -> int:
    """Tell the active caseworkers of the queue (else the coordinators) that it waits."""
    ref = f"urgence-{escalation.id}"
    recipients = await _queue_watchers(escalation.queue, ref)
    label = QUEUE_LABELS.get(escalation.queue, escalation.queue)
    text = (
        "Bonjour,\n\n"
        f"Une nouvelle situation attend dans la file « {label} ».\n"
        f"À traiter avant le {format_local(runtime, escalation.due_at)}.\n\n"
        f"Ouvrir la situation : {link_to(runtime, escalation.queue, escalation.id)}\n\n"
        "Ce message ne contient volontairement aucune donnée personnelle : "
        "connectez-vous pour voir la situation.\n"
    )
    return await _send_all(runtime, recipients, URGENCE_SUBJECT, text, ref)


async def alert_renewed(runtime: Runtime, escalation: Escalation) -> int:
    """A distress reply joined a situation past its due time: tell whoever holds it.

    The assignee when still active, else the queue's caseworkers (else the coordinators).
    """
    ref = f"renew-{escalation.id}-{len(escalation.reply_ids or [])}"
    recipients: list[Staff] = []
    if escalation.assignee_id is not None:
        recipients = await Staff.filter(id=escalation.assignee_id, active=True)
    if not recipients:
        recipients = await _queue_watchers(escalation.queue, ref)
    label = QUEUE_LABELS.get(escalation.queue, escalation.queue)
    text = (
        "Bonjour,\n\n"
        f"Une nouvelle réponse urgente est arrivée dans une situation de la file « {label} » "
        "dont le délai était dépassé.\n"
        f"Nouveau délai : avant le {format_local(runtime, escalation.due_at)}.\n\n"
        f"Ouvrir la situation : {link_to(runtime, escalation.queue, escalation.id)}\n\n"
        "Ce message ne contient volontairement aucune donnée personnelle : "
        "connectez-vous pour voir la situation.\n"
    )
    return await _send_all(runtime, recipients, RENEWED_SUBJECT, text, ref)


async def alert_overdue(runtime: Runtime, counts: Mapping[str, int], now: datetime) -> int:
    """Tell the active coordinators how many escalations went past their due time, by queue."""
    total = sum(counts.values())
    if total == 0:
        return 0
    recipients = await _active_staff(Role.COORDINATOR)
    lines = [
        f"- {QUEUE_LABELS.get(queue, queue)} : {count} situation(s) — {link_to(runtime, queue)}"
        for queue, count in sorted(counts.items())
    ]
    subject = f"[Retard] {total} situation(s) en attente au-delà du délai"
    text = (
        "Bonjour,\n\n"
        f"Au {format_local(runtime, now)}, des situations ont dépassé leur délai de traitement :\n"
        + "\n".join(lines)
        + "\n\nCe message ne contient volontairement aucune donnée personnelle.\n"
    )
    ref = f"overdue-{now.strftime('%Y%m%d%H%M%S')}"
    return await _send_all(runtime, recipients, subject, text, ref)


# Other staff e-mails (the replies' daily summary) go through the same careful loop.
send_to_staff = _send_all

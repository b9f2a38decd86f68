"""E-mail alerts to staff about escalations, written without any personal data.

An alert only says that something waits and where to look: no name, phone number or
reply text ever leaves in an e-mail, which may be read on a shared or personal device.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime

from campaigns.models import Escalation, Role, Staff
from campaigns.queues import QUEUE_LABELS
from campaigns.runtime import Runtime
from providers.base import EmailRequest, Outcome

__all__ = [
    "URGENCE_SUBJECT",
    "alert_new_urgence",
    "alert_overdue",
    "format_local",
    "link_to",
]

log = logging.getLogger(__name__)

URGENCE_SUBJECT = "[Urgence] Nouvelle situation à traiter"


def link_to(runtime: Runtime, queue: str, escalation_id: int | None = None) -> str:
    base = runtime.settings.public_url.rstrip("/")
    suffix = f"/{escalation_id}" if escalation_id is not None else ""
    return f"{base}/files/{queue}{suffix}"


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
    if runtime.email is None:
        log.warning("no e-mail provider: alert %s not sent", ref)
        return 0
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


async def alert_new_urgence(runtime: Runtime, escalation: Escalation) -> int:
    """Tell the active caseworkers of the queue that a new urgent situation waits."""
    recipients = await _active_staff(Role.CASEWORKER, escalation.queue)
    label = QUEUE_LABELS.get(escalation.queue, escalation.queue)
    text = (
        "Bonjour,\n\n"
        f"Une nouvelle situation attend dans la file « {label} ».\n"
        f"À traiter avant le {format_local(runtime, escalation.due_at)}.\n\n"
        f"Ouvrir la situation : {link_to(runtime, escalation.queue, escalation.id)}\n\n"
        "Ce message ne contient volontairement aucune donnée personnelle : "
        "connectez-vous pour voir la situation.\n"
    )
    return await _send_all(runtime, recipients, URGENCE_SUBJECT, text, f"urgence-{escalation.id}")


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

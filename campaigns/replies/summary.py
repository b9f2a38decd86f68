"""The coordinators' daily summary: how many replies nobody has read for more than a day.

One e-mail a day at most, after the opening of the CCAS's day, with counts only: no
name, number or reply text leaves in an e-mail.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, time, timedelta

from campaigns.core.runtime import Runtime
from campaigns.escalations.alerts import send_to_staff
from campaigns.models import Role, Staff
from campaigns.replies.inbox import unread_older_than

__all__ = ["SUBJECT", "send_daily_summary"]

log = logging.getLogger(__name__)

SUBJECT = "[Réponses] Réponses non lues depuis plus d'un jour"
SEND_AFTER = time(8, 0)  # local time: the summary waits for the working day


async def send_daily_summary(runtime: Runtime, now: datetime | None = None) -> int:
    """E-mail the active coordinators once a day when old replies are unread; returns sent."""
    now = now or runtime.clock()
    local = now.astimezone(runtime.settings.tz)
    if local.time() < SEND_AFTER:
        return 0
    unread = await unread_older_than(now, timedelta(days=1))
    if not unread:
        return 0
    # One summary per local day across every worker: a lease that outlives the day.
    key = f"reply-summary:{local.date().isoformat()}"
    if not await runtime.coordination.acquire(key, secrets.token_hex(8), 26 * 3600):
        return 0
    coordinators = await Staff.filter(role=Role.COORDINATOR, active=True).order_by("id")
    link = f"{runtime.settings.public_url.rstrip('/')}/reponses?lues=0"
    text = (
        f"Bonjour,\n\n{unread} réponse(s) reçue(s) il y a plus d'un jour n'ont encore été lues "
        f"par personne.\nElles vous attendent ici : {link}\n\n"
        "Ce message ne contient volontairement aucune donnée personnelle."
    )
    sent = await send_to_staff(
        runtime, coordinators, SUBJECT, text, f"reply-summary-{local.date().isoformat()}"
    )
    log.info("daily reply summary: %d unread, %d coordinators told", unread, sent)
    return sent

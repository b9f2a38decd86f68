"""The coordinators hear once a day about replies nobody has read for more than a day."""

from __future__ import annotations

from datetime import timedelta

import pytest

from campaigns.core.runtime import Runtime
from campaigns.models import Reply, Role
from campaigns.replies.summary import SUBJECT, send_daily_summary
from tests.escalation_support import NOW, emails, escalation_runtime, make_reply, make_staff

pytestmark = pytest.mark.usefixtures("db")


async def test_one_summary_a_day_with_counts_only(runtime: Runtime) -> None:
    escalation_runtime(runtime)
    await make_staff("coord@ccas.test", Role.COORDINATOR)
    old = await make_reply(NOW - timedelta(days=2), text="Madame Martin, je suis seule")
    await Reply.filter(id=old.id).update(processed_at=NOW - timedelta(days=2))
    assert await send_daily_summary(runtime, NOW) == 1
    assert await send_daily_summary(runtime, NOW + timedelta(hours=3)) == 0  # once a day
    (mail,) = [m for m in emails(runtime) if m["subject"] == SUBJECT]
    assert "1 réponse(s)" in mail["text"] and "/reponses?lues=0" in mail["text"]
    assert "Martin" not in mail["text"] and "seule" not in mail["text"]


async def test_nothing_to_say_nothing_sent(runtime: Runtime) -> None:
    escalation_runtime(runtime)
    await make_staff("coord@ccas.test", Role.COORDINATOR)
    fresh = await make_reply(NOW - timedelta(hours=3))
    await Reply.filter(id=fresh.id).update(processed_at=NOW)
    assert await send_daily_summary(runtime, NOW) == 0
    night = NOW.replace(hour=5)
    stale = await make_reply(NOW - timedelta(days=3))
    await Reply.filter(id=stale.id).update(processed_at=NOW - timedelta(days=3))
    assert await send_daily_summary(runtime, night) == 0  # waits for the working day

"""Escalations over time: alerts to the queue, snoozes that wake, overdue ones flagged."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from campaigns import escalations as service
from campaigns.core.errors import Invalid
from campaigns.core.runtime import Runtime
from campaigns.models import AuditEvent, Escalation, EscalationStatus, Person, Role
from tests.escalation_support import (
    NOW,
    at_clock,
    emails,
    escalation_runtime,
    make_person,
    make_reply,
    make_staff,
    paris,
)

S = EscalationStatus


@pytest.fixture
def rt(runtime: Runtime) -> Runtime:
    return escalation_runtime(runtime)


# --- alerts ----------------------------------------------------------------------------


async def test_a_new_urgence_alerts_its_caseworkers_once_without_personal_data(
    rt: Runtime,
) -> None:
    on_duty = await make_staff("garde@ccas.test", queues=["urgence", "rappel"])
    await make_staff("rappel@ccas.test", queues=["rappel"])
    await make_staff("parti@ccas.test", queues=["urgence"], active=False)
    await make_staff("coord@ccas.test", Role.COORDINATOR, queues=["urgence"])
    person = await make_person(mobile="+33698765432")
    reply = await make_reply(NOW, person=person, text="je suis tombée dans la cuisine")
    escalation = await service.escalate(reply=reply, queue="urgence", label="distress", runtime=rt)
    sent = emails(rt)
    assert [m["to"] for m in sent] == [on_duty.email]
    mail = sent[0]
    assert mail["subject"] == "[Urgence] Nouvelle situation à traiter"
    # The staff page of one escalation (campaigns/web/pages/queue_pages.py).
    assert f"http://127.0.0.1:8080/situations/{escalation.id}\n" in mail["text"]
    assert "04/03/2026 à 11:00" in mail["text"]  # the due time, in local time
    for secret in ("Jeanne", "Martin", "98765432", "98 76", "tombée", "cuisine"):
        assert secret not in mail["text"] and secret not in mail["subject"]
    # A second reply joins: no second alert.
    await service.escalate(
        reply=await make_reply(NOW, person=person), queue="urgence", label="distress", runtime=rt
    )
    assert len(emails(rt)) == 1
    # A callback does not alert anyone.
    await service.escalate(
        reply=await make_reply(NOW, person=person), queue="rappel", label="callback", runtime=rt
    )
    assert len(emails(rt)) == 1


async def test_with_nobody_on_urgence_the_coordinators_get_the_alert(
    rt: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """No active caseworker works `urgence`: the active coordinators are alerted, and a
    warning (ids only) says so."""
    await make_staff("rappel@ccas.test", queues=["rappel"])
    await make_staff("parti@ccas.test", queues=["urgence"], active=False)
    coordinator = await make_staff("coord@ccas.test", Role.COORDINATOR)
    await make_staff("ancienne@ccas.test", Role.COORDINATOR, active=False)
    person = await make_person(mobile="+33698765432")
    with caplog.at_level("WARNING", logger="campaigns.escalations.alerts"):
        escalation = await service.escalate(
            reply=await make_reply(NOW, person=person),
            queue="urgence",
            label="distress",
            runtime=rt,
        )
    sent = emails(rt)
    assert [m["to"] for m in sent] == [coordinator.email]
    assert f"/situations/{escalation.id}" in sent[0]["text"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("no active caseworker" in line for line in warnings)
    for line in warnings:
        assert "Martin" not in line and "98765432" not in line and "coord@" not in line


async def _late_flagged_urgence(rt: Runtime, person: Person) -> Escalation:
    """An `urgence` escalation left past its due time and already flagged overdue."""
    escalation = await service.escalate(
        reply=await make_reply(NOW, person=person), queue="urgence", label="distress", runtime=rt
    )
    assert await service.flag_overdue(rt, NOW + timedelta(hours=2)) == 1
    return escalation


@pytest.mark.parametrize("assigned", [True, False])
async def test_a_distress_reply_on_a_late_urgence_renews_its_due_time_and_alerts(
    rt: Runtime, assigned: bool
) -> None:
    """Joining an open `urgence` already late and flagged: a fresh due time from now, the
    overdue flag cleared (so it can be raised again), and an alert to the assignee, else
    to the queue's caseworkers."""
    referent = await make_staff("ref@ccas.test", queues=["urgence"])
    colleague = await make_staff("garde@ccas.test", queues=["urgence"])
    person = await make_person(referent_email=referent.email if assigned else None)
    escalation = await _late_flagged_urgence(rt, person)
    assert escalation.assignee_id == (referent.id if assigned else None)
    before = len(emails(rt))
    later = NOW + timedelta(hours=3)
    at_clock(rt, later)
    reply = await make_reply(later, person=person, text="je suis encore par terre")
    joined = await service.escalate(reply=reply, queue="urgence", label="distress", runtime=rt)
    assert joined.id == escalation.id
    stored = await Escalation.get(id=escalation.id)
    assert stored.due_at == later + timedelta(hours=1)
    assert stored.overdue_notified_at is None
    assert stored.reply_ids == [*escalation.reply_ids, reply.id]
    alerts = emails(rt)[: len(emails(rt)) - before]  # newest first
    expected = [referent.email] if assigned else sorted([referent.email, colleague.email])
    assert sorted(m["to"] for m in alerts) == expected
    assert alerts[0]["subject"].startswith("[Urgence] Nouvelle réponse urgente")
    assert f"/situations/{escalation.id}" in alerts[0]["text"]
    assert "04/03/2026 à 14:00" in alerts[0]["text"]  # the new due time, Paris time
    assert "par terre" not in alerts[0]["text"] and "Martin" not in alerts[0]["text"]
    # Late again later: flagged again.
    assert await service.flag_overdue(rt, later + timedelta(hours=2)) == 1


async def test_a_reply_joining_before_the_due_time_keeps_it_and_alerts_nobody(
    rt: Runtime,
) -> None:
    await make_staff("garde@ccas.test", queues=["urgence"])
    person = await make_person()
    first = await service.escalate(
        reply=await make_reply(NOW, person=person), queue="urgence", label="distress", runtime=rt
    )
    before = len(emails(rt))
    at_clock(rt, NOW + timedelta(minutes=30))
    await service.escalate(
        reply=await make_reply(NOW + timedelta(minutes=30), person=person),
        queue="urgence",
        label="distress",
        runtime=rt,
    )
    assert (await Escalation.get(id=first.id)).due_at == first.due_at
    assert len(emails(rt)) == before


# --- snooze, wake, overdue -------------------------------------------------------------


async def test_snooze_then_wake_at_the_callback_date(rt: Runtime) -> None:
    worker = await make_staff("w@x.fr", queues=["rappel"])
    escalation = await service.escalate(
        reply=await make_reply(NOW, person=await make_person()),
        queue="rappel",
        label="callback",
        runtime=rt,
    )
    callback = paris(2026, 3, 9, 14, 0)  # Monday 14:00
    snoozed = await service.snooze(worker, escalation.id, callback, rt)
    assert (snoozed.status, snoozed.snoozed_until, snoozed.assignee_id) == (
        S.SNOOZED,
        callback,
        worker.id,
    )
    assert await service.wake_snoozed(rt, callback - timedelta(minutes=1)) == 0
    assert await service.wake_snoozed(rt, callback) == 1
    woken = await Escalation.get(id=escalation.id)
    assert (woken.status, woken.snoozed_until, woken.assignee_id) == (S.OPEN, None, worker.id)
    # The queue's 24 opening hours start again at the callback date.
    assert woken.due_at == paris(2026, 3, 12, 14, 0)
    assert await service.wake_snoozed(rt, callback) == 0


@pytest.mark.parametrize(
    ("until", "error"),
    [(NOW - timedelta(hours=1), Invalid), (NOW + timedelta(days=400), Invalid)],
)
async def test_snooze_needs_a_date_in_the_coming_year(
    rt: Runtime, until: datetime, error: type[Exception]
) -> None:
    worker = await make_staff("w@x.fr", queues=["rappel"])
    escalation = await service.escalate(
        reply=await make_reply(NOW, person=await make_person()),
        queue="rappel",
        label="callback",
        runtime=rt,
    )
    with pytest.raises(error):
        await service.snooze(worker, escalation.id, until, rt)


async def test_overdue_escalations_are_flagged_once_and_raised_to_coordinators(
    rt: Runtime,
) -> None:
    coordinator = await make_staff("coord@ccas.test", Role.COORDINATOR)
    await make_staff("ancien@ccas.test", Role.COORDINATOR, active=False)
    boss = await make_staff("admin@ccas.test", Role.ADMIN)
    late = await service.escalate(
        reply=await make_reply(NOW, person=await make_person()),
        queue="urgence",
        label="distress",
        runtime=rt,
    )
    snoozed = await service.escalate(
        reply=await make_reply(NOW, person=await make_person()),
        queue="urgence",
        label="distress",
        runtime=rt,
    )
    await service.snooze(boss, snoozed.id, NOW + timedelta(days=1), rt)
    done = await service.escalate(
        reply=await make_reply(NOW, person=await make_person()),
        queue="urgence",
        label="distress",
        runtime=rt,
    )
    await service.resolve(boss, done.id, "joint", rt)
    assert await service.flag_overdue(rt, NOW + timedelta(minutes=59)) == 0
    later = NOW + timedelta(hours=2)
    assert await service.flag_overdue(rt, later) == 1
    assert await service.flag_overdue(rt, later + timedelta(hours=1)) == 0
    assert (await Escalation.get(id=late.id)).overdue_notified_at == later
    raised = [m for m in emails(rt) if m["subject"].startswith("[Retard]")]
    assert [m["to"] for m in raised] == [coordinator.email]
    assert "1 situation(s)" in raised[0]["subject"]
    assert "Urgence : 1 situation(s)" in raised[0]["text"]
    assert "Martin" not in raised[0]["text"] and "+336" not in raised[0]["text"]
    assert await AuditEvent.filter(action="escalation.overdue").count() == 1

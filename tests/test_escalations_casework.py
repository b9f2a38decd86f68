"""Casework on escalations: transitions, "next", notes, the view's audit, and the cron jobs."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest

from campaigns import escalations as service
from campaigns.core.errors import Conflict, Forbidden, Invalid
from campaigns.core.runtime import Runtime
from campaigns.models import AuditEvent, Escalation, EscalationStatus, Role
from campaigns.registry import people
from tests.escalation_support import (
    NOW,
    at_clock,
    escalation_runtime,
    make_person,
    make_reply,
    make_staff,
)

S = EscalationStatus


@pytest.fixture
def rt(runtime: Runtime) -> Runtime:
    return escalation_runtime(runtime)


# --- transitions and "next" (on both engines; the locking path runs in its own file) -----


async def test_invalid_transitions_conflict(rt: Runtime) -> None:
    worker = await make_staff("w@x.fr", queues=["rappel"])
    person = await make_person()
    escalation = await service.escalate(
        reply=await make_reply(NOW, person=person), queue="rappel", label="callback", runtime=rt
    )
    with pytest.raises(Conflict):
        await service.reopen(worker, escalation.id, rt)
    with pytest.raises(Invalid):
        await service.resolve(worker, escalation.id, "parti_en_vacances", rt)
    await service.resolve(worker, escalation.id, "rien_a_signaler", rt, note="Tout va bien")
    for action in (
        service.resolve(worker, escalation.id, "joint", rt),
        service.claim(worker, escalation.id, rt),
        service.snooze(worker, escalation.id, NOW + timedelta(days=1), rt),
    ):
        with pytest.raises(Conflict):
            await action
    # Meanwhile a new story opened for the same (person, queue) after the window...
    other = await Escalation.create(
        person_id=person.id, queue="rappel", open_key=f"p{person.id}:rappel", due_at=NOW
    )
    with pytest.raises(Conflict):
        await service.reopen(worker, escalation.id, rt)
    await service.resolve(worker, other.id, "joint", rt)
    reopened = await service.reopen(worker, escalation.id, rt)
    assert (reopened.status, reopened.outcome) == (S.OPEN, None)
    assert await AuditEvent.filter(action="escalation.reopen").count() == 1


async def test_a_caseworker_cannot_take_a_colleagues_or_another_queues_escalation(
    rt: Runtime,
) -> None:
    mine = await make_staff("moi@ccas.test", queues=["rappel"])
    colleague = await make_staff("collegue@ccas.test", queues=["rappel", "urgence"])
    person = await make_person(referent_email=colleague.email)
    followed = await service.escalate(
        reply=await make_reply(NOW, person=person), queue="rappel", label="callback", runtime=rt
    )
    assert followed.assignee_id == colleague.id
    with pytest.raises(Conflict):
        await service.claim(mine, followed.id, rt)
    with pytest.raises(Forbidden):
        await service.resolve(mine, followed.id, "joint", rt)
    urgent = await service.escalate(
        reply=await make_reply(NOW, person=person), queue="urgence", label="distress", runtime=rt
    )
    with pytest.raises(Forbidden):
        await service.get_escalation(mine, urgent.id)
    with pytest.raises(Forbidden):
        await service.claim_next(mine, "urgence", rt)
    assert await service.claim_next(mine, "rappel", rt) is None  # the colleague's is not free
    assert (await service.claim_next(colleague, "rappel", rt)).id == followed.id


async def test_next_takes_priority_then_overdue_then_oldest_and_never_twice(rt: Runtime) -> None:
    worker = await make_staff("w@x.fr", queues=["triage"])
    other = await make_staff("o@x.fr", queues=["triage"])

    async def make(priority: int, created: datetime, due: datetime, **kw: object) -> int:
        escalation = await Escalation.create(
            queue="triage", priority=priority, due_at=due, open_key=uuid.uuid4().hex, **kw
        )
        await Escalation.filter(id=escalation.id).update(created_at=created)
        return escalation.id

    day = timedelta(days=1)
    low_old = await make(1, NOW - 3 * day, NOW + day)
    high_late_young = await make(3, NOW - day, NOW - timedelta(hours=1))
    high_on_time_old = await make(3, NOW - 2 * day, NOW + day)
    high_on_time_young = await make(3, NOW - day, NOW + day)
    mine = await make(1, NOW - 4 * day, NOW + day, assignee_id=worker.id)
    others = await make(3, NOW - 5 * day, NOW + day, assignee_id=other.id)
    await make(3, NOW - 5 * day, NOW + day, status=S.SNOOZED)
    expected = [high_late_young, high_on_time_old, high_on_time_young, mine, low_old]
    listed = await service.list_escalations(worker, now=NOW, queue="triage", status="open")
    assert [e.id for e in listed] == [high_late_young, others, *expected[1:]]
    taken = [await service.claim_next(worker, "triage", rt) for _ in range(6)]
    assert [e.id if e else None for e in taken] == [*expected, None]
    assert {e.status for e in taken if e} == {S.CLAIMED}
    assert {e.assignee_id for e in taken if e} == {worker.id}


async def test_notes_and_view_are_audited_and_person_access_follows_queues(rt: Runtime) -> None:
    worker = await make_staff("w@x.fr", queues=["rappel"])
    outsider = await make_staff("u@x.fr", queues=["urgence"])
    person = await make_person()
    escalation = await service.escalate(
        reply=await make_reply(NOW, person=person), queue="rappel", label="callback", runtime=rt
    )
    note = await service.add_note(worker, escalation.id, "  Appelée, rappeler lundi  ", rt)
    assert note.text == "Appelée, rappeler lundi"
    view = await service.escalation_view(worker, escalation.id, rt)
    assert view["person"]["last_name"] == "Martin"
    assert [r.text for r in view["replies"]] == ["je suis tombée"]
    assert await AuditEvent.filter(action="person.view", object_id=str(person.id)).count() == 1
    # The people side of the rule (campaigns.registry.people) sees the same queues.
    assert await people.can_view_person(worker, person.id)
    assert not await people.can_view_person(outsider, person.id)
    with pytest.raises(Forbidden):
        await service.escalation_view(outsider, escalation.id, rt)


async def test_the_cron_jobs_wake_then_flag(rt: Runtime) -> None:
    from workers.escalation_jobs import flag_overdue_escalations, wake_snoozed_escalations

    boss = await make_staff("boss@x.fr", Role.COORDINATOR)
    escalation = await service.escalate(
        reply=await make_reply(NOW, person=await make_person()),
        queue="urgence",
        label="distress",
        runtime=rt,
    )
    await service.snooze(boss, escalation.id, NOW + timedelta(hours=1), rt)
    at_clock(rt, NOW + timedelta(hours=3))
    ctx = {"runtime": rt}
    assert await flag_overdue_escalations(ctx) == 0  # snoozed: not late
    assert await wake_snoozed_escalations(ctx) == 1
    assert await flag_overdue_escalations(ctx) == 1  # due one hour after the callback date
    assert await flag_overdue_escalations(ctx) == 0

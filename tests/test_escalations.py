"""Escalation rules: one open per (person, queue), joins, reopening, référents, due times."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from campaigns import escalations as service
from campaigns.core.runtime import Runtime
from campaigns.core.settings import Settings, SettingsError, load_settings
from campaigns.models import Escalation, EscalationNote, EscalationStatus, Role
from campaigns.rules.queues import (
    PRIORITY_HIGH,
    PRIORITY_LOW,
    compute_due_at,
    opening_window,
    parse_queue_rules,
    rule_for,
)
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


# --- pure rules: queue configuration and due times -------------------------------------


@pytest.mark.parametrize(
    ("queue", "received", "due"),
    [
        # urgence: one hour of elapsed time, even at night or on a holiday
        ("urgence", paris(2026, 3, 6, 16, 0), paris(2026, 3, 6, 17, 0)),
        ("urgence", paris(2026, 7, 14, 23, 30), paris(2026, 7, 15, 0, 30)),
        # rappel: 24 opening hours (mon-fri 09:00-17:00): Friday 16:00 -> Wednesday 16:00
        ("rappel", paris(2026, 3, 6, 16, 0), paris(2026, 3, 11, 16, 0)),
        # ... and 14 July (a Tuesday in 2026) does not count: Monday 16:00 -> Friday 16:00
        ("rappel", paris(2026, 7, 13, 16, 0), paris(2026, 7, 17, 16, 0)),
        # a Saturday reply starts counting on Monday morning
        ("rappel", paris(2026, 3, 7, 10, 0), paris(2026, 3, 11, 17, 0)),
        # triage: 48 hours elapsed
        ("triage", paris(2026, 3, 6, 16, 0), paris(2026, 3, 8, 16, 0)),
    ],
)
def test_due_times_by_queue(queue: str, received: datetime, due: datetime) -> None:
    # Named explicitly: a bare TIMEZONE variable (tortoise sets it) would otherwise win.
    settings = Settings(CAMPAIGNS_TIMEZONE="Europe/Paris", _env_file=None)  # type: ignore[call-arg]
    rule = rule_for(settings, queue)
    assert compute_due_at(rule, received, opening_window(settings)) == due


@pytest.mark.parametrize(
    ("spec", "queue", "hours", "opening", "priority"),
    [
        ("", "rappel", 24, True, 2),
        ("urgence=2h", "urgence", 2, False, 3),
        ("rappel=8ho", "rappel", 8, True, 2),
        ("triage=1.5oh:haute", "triage", 1.5, True, 3),
        ("triage=12h:1", "triage", 12, False, 1),
    ],
)
def test_queue_rules_parse(
    spec: str, queue: str, hours: float, opening: bool, priority: int
) -> None:
    rule = parse_queue_rules(spec)[queue]
    assert (rule.hours, rule.opening_hours, rule.priority) == (hours, opening, priority)


@pytest.mark.parametrize(
    "spec", ["urgence", "urgence=", "urgence=1j", "inconnue=1h", "triage=0h", "rappel=2h:vite"]
)
def test_bad_queue_rule_stops_start_up_naming_the_variable(
    spec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAMPAIGNS_QUEUES", spec)
    with pytest.raises(SettingsError) as err:
        load_settings(None)
    assert "CAMPAIGNS_QUEUES" in str(err.value)


# --- escalate --------------------------------------------------------------------------


async def test_a_later_reply_joins_raises_priority_and_brings_the_due_time_forward(
    rt: Runtime,
) -> None:
    person = await make_person()
    later = await make_reply(NOW + timedelta(hours=1), person=person, text="bonjour")
    first = await service.escalate(reply=later, queue="triage", label="other", runtime=rt)
    assert first.priority == PRIORITY_LOW
    assert first.due_at == NOW + timedelta(hours=49)
    # A reply received earlier but processed later (a long SMS completed by timeout).
    earlier = await make_reply(NOW, person=person, text="au secours")
    joined = await service.escalate(reply=earlier, queue="triage", label="distress", runtime=rt)
    assert joined.id == first.id
    assert await Escalation.all().count() == 1
    stored = await Escalation.get(id=first.id)
    assert stored.reply_ids == [later.id, earlier.id]
    assert stored.priority == PRIORITY_HIGH
    assert stored.due_at == NOW + timedelta(hours=48)
    assert stored.open_key == f"p{person.id}:triage"


async def test_the_same_reply_twice_changes_nothing(rt: Runtime) -> None:
    person = await make_person()
    reply = await make_reply(NOW, person=person)
    first = await service.escalate(reply=reply, queue="rappel", label="callback", runtime=rt)
    again = await service.escalate(reply=reply, queue="rappel", label="callback", runtime=rt)
    assert again.id == first.id
    assert (await Escalation.get(id=first.id)).reply_ids == [reply.id]
    await service.resolve(await make_staff("c@x.fr", Role.COORDINATOR), first.id, "joint", rt)
    # A retried job after the resolution must not reopen it either.
    await service.escalate(reply=reply, queue="rappel", label="callback", runtime=rt)
    assert (await Escalation.get(id=first.id)).status == S.RESOLVED


async def test_one_escalation_per_queue_for_the_same_person(rt: Runtime) -> None:
    person = await make_person()
    await service.escalate(
        reply=await make_reply(NOW, person=person), queue="rappel", label="callback", runtime=rt
    )
    await service.escalate(
        reply=await make_reply(NOW, person=person), queue="urgence", label="distress", runtime=rt
    )
    assert sorted(await Escalation.all().values_list("queue", flat=True)) == ["rappel", "urgence"]


async def test_unknown_senders_are_kept_apart_by_number(rt: Runtime) -> None:
    a1 = await make_reply(NOW, msisdn="+33611111111")
    a2 = await make_reply(NOW, msisdn="+33611111111")
    b = await make_reply(NOW, msisdn="+33622222222")
    e1 = await service.escalate(reply=a1, queue="triage", label="other", runtime=rt)
    e2 = await service.escalate(reply=a2, queue="triage", label="other", runtime=rt)
    e3 = await service.escalate(reply=b, queue="triage", label="other", runtime=rt)
    assert e1.id == e2.id != e3.id
    assert e1.person_id is None and e1.msisdn == "+33611111111"
    assert e1.open_key == "n+33611111111:triage"


async def test_a_shared_number_marks_multiple_candidates(rt: Runtime) -> None:
    one, two = await make_person(), await make_person()
    reply = await make_reply(NOW, msisdn="+33633333333", candidates=[one.id, two.id])
    escalation = await service.escalate(reply=reply, queue="rappel", label="callback", runtime=rt)
    assert escalation.multiple_candidates is True


async def test_a_snoozed_escalation_comes_back_open_when_the_person_writes_again(
    rt: Runtime,
) -> None:
    person = await make_person()
    worker = await make_staff("w@x.fr", queues=["rappel"])
    first = await service.escalate(
        reply=await make_reply(NOW, person=person), queue="rappel", label="callback", runtime=rt
    )
    await service.snooze(worker, first.id, NOW + timedelta(days=3), rt)
    await service.escalate(
        reply=await make_reply(NOW, person=person), queue="rappel", label="callback", runtime=rt
    )
    stored = await Escalation.get(id=first.id)
    assert (stored.status, stored.snoozed_until, stored.assignee_id) == (S.OPEN, None, worker.id)


async def test_a_new_reply_reopens_a_recent_resolution_and_not_an_old_one(rt: Runtime) -> None:
    person = await make_person()
    boss = await make_staff("boss@x.fr", Role.COORDINATOR)
    first = await service.escalate(
        reply=await make_reply(NOW, person=person), queue="rappel", label="callback", runtime=rt
    )
    await service.resolve(boss, first.id, "injoignable", rt)
    assert (await Escalation.get(id=first.id)).open_key is None
    # Ten days later: the same story goes on in the same escalation.
    later = NOW + timedelta(days=10)
    at_clock(rt, later)
    reply = await make_reply(later, person=person)
    reopened = await service.escalate(reply=reply, queue="rappel", label="callback", runtime=rt)
    assert reopened.id == first.id
    stored = await Escalation.get(id=first.id)
    assert (stored.status, stored.outcome, stored.resolved_at) == (S.OPEN, None, None)
    assert stored.open_key == f"p{person.id}:rappel"
    assert len(stored.reply_ids) == 2
    note = await EscalationNote.get(escalation_id=first.id)
    assert "Injoignable" in note.text and note.author_label == "système"
    # Resolved again, then a reply two months later: a new escalation.
    await service.resolve(boss, first.id, "joint", rt)
    much_later = later + timedelta(days=60)
    at_clock(rt, much_later)
    fresh = await service.escalate(
        reply=await make_reply(much_later, person=person),
        queue="rappel",
        label="callback",
        runtime=rt,
    )
    assert fresh.id != first.id
    assert (await Escalation.get(id=first.id)).status == S.RESOLVED


@pytest.mark.parametrize(
    ("referent", "assigned"),
    [
        ({"queues": ["rappel"]}, True),
        ({"queues": ["urgence"]}, False),  # the référent does not work this queue
        ({"queues": ["rappel"], "active": False}, False),
        ({"queues": ["rappel"], "role": Role.COORDINATOR}, False),
        (None, False),
    ],
)
async def test_assigned_to_the_referent_only_when_they_work_the_queue(
    rt: Runtime, referent: dict | None, assigned: bool
) -> None:
    staff = await make_staff("ref@ccas.test", **referent) if referent else None
    person = await make_person(referent_email="Ref@CCAS.test" if referent else None)
    escalation = await service.escalate(
        reply=await make_reply(NOW, person=person), queue="rappel", label="callback", runtime=rt
    )
    assert escalation.assignee_id == (staff.id if assigned and staff else None)
    assert escalation.status == S.OPEN


async def test_concurrent_replies_for_one_person_make_one_escalation(rt: Runtime) -> None:
    await make_staff("garde@ccas.test", queues=["urgence"])
    person = await make_person()
    replies = [await make_reply(NOW, person=person) for _ in range(6)]
    results = await asyncio.gather(
        *(service.escalate(reply=r, queue="urgence", label="distress", runtime=rt) for r in replies)
    )
    assert len({e.id for e in results}) == 1
    stored = await Escalation.get()
    assert sorted(stored.reply_ids) == sorted(r.id for r in replies)
    assert len(emails(rt)) == 1  # one alert, not six

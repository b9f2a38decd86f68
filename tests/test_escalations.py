"""Escalation rules: one open per (person, queue), joins, reopening, référents, due times."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from campaigns.core.errors import Conflict, Forbidden, Invalid
from campaigns.core.runtime import Runtime
from campaigns.core.settings import Settings, SettingsError, load_settings
from campaigns.escalations import lifecycle as service
from campaigns.models import (
    AuditEvent,
    Escalation,
    EscalationNote,
    EscalationStatus,
    Person,
    Reply,
    Role,
    Staff,
)
from campaigns.registry import people
from campaigns.rules.queues import (
    PRIORITY_HIGH,
    PRIORITY_LOW,
    compute_due_at,
    opening_window,
    parse_queue_rules,
    rule_for,
)
from providers.console import read_outbox

PARIS = ZoneInfo("Europe/Paris")
S = EscalationStatus


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)  # type: ignore[misc]


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


# --- helpers on a database -------------------------------------------------------------


async def make_person(referent_email: str | None = None, mobile: str = "+33612345678") -> Person:
    return await Person.create(
        last_name="Martin",
        first_name="Jeanne",
        identity_key=f"martin|jeanne|{uuid.uuid4().hex}",
        mobile=mobile,
        referent_email=referent_email,
    )


async def make_staff(
    email: str, role: Role = Role.CASEWORKER, queues: list[str] | None = None, active: bool = True
) -> Staff:
    return await Staff.create(
        email=email, role=role, password_hash="x", queues=queues or [], active=active
    )


async def make_reply(
    at: datetime,
    *,
    person: Person | None = None,
    msisdn: str = "+33612345678",
    text: str = "je suis tombée",
    candidates: list[int] | None = None,
) -> Reply:
    return await Reply.create(
        provider_message_id=uuid.uuid4().hex,
        msisdn=msisdn,
        text=text,
        received_at=at,
        person_id=person.id if person else None,
        candidate_ids=candidates if candidates is not None else ([person.id] if person else []),
    )


def at_clock(runtime: Runtime, now: datetime) -> None:
    runtime.clock = lambda: now


NOW = paris(2026, 3, 4, 10, 0)  # a Wednesday morning


@pytest.fixture
def rt(runtime: Runtime) -> Runtime:
    # Explicit: Settings also reads a bare TIMEZONE variable, which tortoise sets to UTC.
    runtime.settings = runtime.settings.model_copy(update={"timezone": "Europe/Paris"})
    at_clock(runtime, NOW)
    return runtime


def emails(runtime: Runtime) -> list[dict]:
    return [r for r in read_outbox(runtime.settings.outbox_dir) if r["channel"] == "email"]


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

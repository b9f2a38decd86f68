"""A 3-day recurring call campaign over a register, driven by a simulated clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta

import pytest

from campaigns.calls.generation import create_tasks
from campaigns.calls.outcomes import OutcomeRequest, record_outcome
from campaigns.calls.taking import claim_next
from campaigns.campaign.launch import start_due_runs
from campaigns.campaign.lifecycle import cancel
from campaigns.core.errors import Conflict
from campaigns.core.runtime import Runtime
from campaigns.models import (
    CallStatus,
    CallTask,
    Campaign,
    CampaignRun,
    CampaignStatus,
    Escalation,
    EscalationNote,
    OptOut,
    Role,
)
from campaigns.rules.call_retry import day_part
from campaigns.rules.queues import opening_window
from tests.call_support import ADMIN, Clock, call_campaign, fragile_register, staff


@pytest.fixture
def clock(runtime: Runtime) -> Clock:
    clock = Clock()
    runtime.clock = clock
    return clock


async def test_three_day_cycles_retries_followups_and_same_caller(
    runtime: Runtime, clock: Clock
) -> None:
    worker = await staff("cw@ccas.test", Role.CASEWORKER)
    volunteer = await staff("vol@ccas.test", Role.BENEVOLE)
    people = await fragile_register(6, referent="cw@ccas.test")
    campaign, result = await call_campaign(runtime, callers=[worker.email, volunteer.email])
    assert result is not None and result["recipients"] == 6
    run1 = await CampaignRun.get(campaign_id=campaign.id, number=1)
    tasks = {t.person_id: t for t in await CallTask.filter(run_id=run1.id)}
    assert set(tasks) == {p.id for p in people}
    # The referent takes calls on this campaign: their person is theirs, the rest a pool.
    assert tasks[people[0].id].assignee_id == worker.id
    assert all(tasks[p.id].assignee_id is None for p in people[1:])

    # Generating the cycle again creates nothing: nobody is called twice in a cycle.
    again = await create_tasks(campaign, run1.id, 1, settings=runtime.settings, now=clock.now)
    assert again.created == 0 and again.eligible == 6

    # The caseworker's "next" gives their own person; the volunteer's the pool, oldest first.
    own = await claim_next(worker, clock.now)
    assert own is not None and own.person_id == people[0].id
    await record_outcome(worker, own.id, OutcomeRequest("joint_rien"), runtime)
    taken = []
    for _ in range(5):
        task = await claim_next(volunteer, clock.now)
        assert task is not None
        taken.append(task)
        outcome = "joint_rien" if task.person_id != people[1].id else "pas_de_reponse"
        await record_outcome(volunteer, task.id, OutcomeRequest(outcome), runtime)
    assert await claim_next(volunteer, clock.now) is None  # the retry is not due yet

    # No answer three times: retried at other times of day, in opening hours, then injoignable.
    window = opening_window(runtime.settings)
    silent = await CallTask.get(run_id=run1.id, person_id=people[1].id)
    attempts_at = [clock.now]
    for attempt in (2, 3):
        assert silent.status == CallStatus.RETRY
        assert silent.assignee_id == volunteer.id  # the same voice calls back
        due = silent.due_at
        assert due > clock.now and window.is_open(due)
        assert day_part(due, window) not in {day_part(a, window) for a in attempts_at}
        # The clock reads UTC, as the service's does: the due time must compare right.
        clock.now = due.astimezone(UTC) + timedelta(minutes=1)
        again_task = await claim_next(volunteer, clock.now)
        assert again_task is not None and again_task.id == silent.id
        attempts_at.append(clock.now)
        await record_outcome(volunteer, silent.id, OutcomeRequest("messagerie"), runtime)
        silent = await CallTask.get(id=silent.id)
        assert silent.attempts == attempt
    assert silent.status == CallStatus.INJOIGNABLE
    follow_up = await Escalation.get(person_id=people[1].id, queue="suivi")
    note = await EscalationNote.get(escalation_id=follow_up.id)
    assert "Injoignable après 3" in note.text and "Fille 1" in note.text
    assert silent.escalation_id == follow_up.id

    # Three days later the next cycle starts: the same callers keep their people.
    clock.now = campaign.next_run_at + timedelta(minutes=1)
    assert await start_due_runs(runtime, clock.now) == 1
    run2 = await CampaignRun.get(campaign_id=campaign.id, number=2)
    assert run2.started_at == clock.now  # the cycle's own clock, not the machine's
    cycle2 = {t.person_id: t for t in await CallTask.filter(run_id=run2.id)}
    assert set(cycle2) == {p.id for p in people}
    assert cycle2[people[0].id].assignee_id == worker.id
    reached_by_volunteer = [t.person_id for t in taken if t.person_id != people[1].id]
    assert all(cycle2[pid].assignee_id == volunteer.id for pid in reached_by_volunteer)
    assert cycle2[people[1].id].assignee_id is None  # never reached: back to the pool


async def test_refusal_stops_calls_and_next_cycle_skips_the_person(
    runtime: Runtime, clock: Clock
) -> None:
    volunteer = await staff("vol@ccas.test", Role.BENEVOLE)
    people = await fragile_register(3)
    campaign, _ = await call_campaign(runtime, callers=[volunteer.email])
    task = await claim_next(volunteer, clock.now)
    assert task is not None
    await record_outcome(volunteer, task.id, OutcomeRequest("refus_appels"), runtime)
    person = next(p for p in people if p.id == task.person_id)
    numbers = {f"tel:{n}" for n in (person.mobile, person.landline) if n}
    stored = set(await OptOut.filter(channel="appel").values_list("address", flat=True))
    assert stored == numbers
    # An opt-out of calls is not an opt-out of SMS: the bare number is not blocked.
    assert not await OptOut.filter(address__in=[n[4:] for n in numbers]).exists()
    clock.now = campaign.next_run_at + timedelta(minutes=1)
    await start_due_runs(runtime, clock.now)
    run2 = await CampaignRun.get(campaign_id=campaign.id, number=2)
    assert run2.recipients == 2 and run2.skipped == 1
    assert not await CallTask.exists(run_id=run2.id, person_id=person.id)


async def test_need_opens_an_escalation_and_wrong_number_a_follow_up(
    runtime: Runtime, clock: Clock
) -> None:
    volunteer = await staff("vol@ccas.test", Role.BENEVOLE)
    await fragile_register(2)
    await call_campaign(runtime, callers=[volunteer.email], recurrence_days=None)
    first = await claim_next(volunteer, clock.now)
    assert first is not None
    await record_outcome(
        volunteer,
        first.id,
        OutcomeRequest("joint_besoin", queue="urgence", note="Chute hier soir"),
        runtime,
    )
    escalation = await Escalation.get(person_id=first.person_id, queue="urgence")
    notes = await EscalationNote.filter(escalation_id=escalation.id).values_list("text", flat=True)
    assert any("Chute hier soir" in n for n in notes)
    second = await claim_next(volunteer, clock.now)
    assert second is not None
    await record_outcome(volunteer, second.id, OutcomeRequest("faux_numero"), runtime)
    assert await Escalation.exists(person_id=second.person_id, queue="suivi")
    # Recording twice is refused: the call is over.
    with pytest.raises(Conflict, match="terminé"):
        await record_outcome(volunteer, second.id, OutcomeRequest("joint_rien"), runtime)
    # Every call made: the one-off campaign is completed.
    campaign = await Campaign.get(id=first.campaign_id)
    assert campaign.status == CampaignStatus.COMPLETED


async def test_cancelling_a_call_campaign_cancels_its_calls(runtime: Runtime, clock: Clock) -> None:
    volunteer = await staff("vol@ccas.test", Role.BENEVOLE)
    await fragile_register(3)
    campaign, _ = await call_campaign(runtime, callers=[volunteer.email])
    in_hand = await claim_next(volunteer, clock.now)
    assert in_hand is not None
    result = await cancel(campaign.id, actor=ADMIN, now=clock.now)
    assert result["status"] == "cancelled"
    statuses = sorted(
        await CallTask.filter(campaign_id=campaign.id).values_list("status", flat=True)
    )
    assert statuses == ["cancelled", "cancelled", "claimed"]
    assert await claim_next(volunteer, clock.now) == in_hand  # the call in hand is finished
    await record_outcome(volunteer, in_hand.id, OutcomeRequest("joint_rien"), runtime)
    assert await claim_next(volunteer, clock.now) is None


async def test_callers_pressing_next_at_once_never_get_the_same_call(
    runtime: Runtime, clock: Clock
) -> None:
    callers = [await staff(f"vol{i}@ccas.test", Role.BENEVOLE) for i in range(4)]
    await fragile_register(10)
    await call_campaign(runtime, callers=[c.email for c in callers])
    taken: list[int] = []
    for _ in range(3):
        tasks = await asyncio.gather(*(claim_next(c, clock.now) for c in callers))
        for caller, task in zip(callers, tasks, strict=True):
            if task is not None:
                taken.append(task.id)
                await record_outcome(caller, task.id, OutcomeRequest("joint_rien"), runtime)
    assert len(taken) == len(set(taken)) == 10

"""A journey: SMS invitation -> reminder to the silent -> calls to those still silent."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from campaigns.calls.generation import OPEN_STATUSES
from campaigns.campaign.journeys import advance_journeys, journey_steps
from campaigns.campaign.launch import launch
from campaigns.campaign.lifecycle import create_campaign
from campaigns.campaign.progress import campaign_state
from campaigns.core.errors import Invalid
from campaigns.core.runtime import Runtime
from campaigns.messages.template_store import TemplateContent, create_template
from campaigns.models import (
    CallStatus,
    CallTask,
    Campaign,
    Escalation,
    Membership,
    Message,
    MessageStatus,
    OptOut,
    Person,
    Reply,
    Role,
)
from campaigns.registry.audiences import create_audience
from campaigns.replies.routing import process_reply
from campaigns.web.pages.funnel import funnel_svg
from tests.call_support import ADMIN, SCRIPT, Clock, staff


@pytest.fixture
def clock(runtime: Runtime) -> Clock:
    clock = Clock()
    runtime.clock = clock
    runtime.settings.ccas_name = "CCAS de Test-sur-Mer"
    runtime.settings.ccas_hotline = "0 800 12 34 56"
    return clock


async def _people(n: int) -> list[Person]:
    people = []
    for i in range(n):
        person = await Person.create(
            last_name=f"Parcours{i}", first_name=f"P{i}", identity_key=f"parcours{i}||",
            mobile=f"+3361000000{i}", landline=f"+3311000000{i}",
        )  # fmt: skip
        await Membership.create(person=person, segment="domicilies")
        people.append(person)
    return people


async def _journey(runtime: Runtime, callers: list[str]) -> Campaign:
    invite = await create_template(
        "Invitation", "sms", TemplateContent("Bonjour, appelez le {{ ccas.hotline }}"), actor=ADMIN
    )
    remind = await create_template(
        "Relance", "sms", TemplateContent("Nous n'avons pas eu de vos nouvelles"), actor=ADMIN
    )
    script = await create_template("Script", "appel", TemplateContent(SCRIPT), actor=ADMIN)
    audience, _ = await create_audience("Domiciliés", {"segments_any": ["domicilies"]}, actor=ADMIN)
    campaign = await create_campaign(
        name="Domiciliation", channel="sms", template_id=invite.id, audience_id=audience.id,
        actor=ADMIN, settings=runtime.settings, now=runtime.clock(),
        journey={"reminder_days": 2, "reminder_template_id": remind.id, "call_days": 3,
                 "call_template_id": script.id, "callers": callers},
    )  # fmt: skip
    await launch(campaign.id, actor=ADMIN, runtime=runtime)
    return await Campaign.get(id=campaign.id)


async def _reply(person: Person, campaign_id: int, at, text: str = "merci") -> Reply:
    return await Reply.create(
        provider_message_id=uuid.uuid4().hex, msisdn=person.mobile, text=text, received_at=at,
        person_id=person.id, candidate_ids=[person.id], campaign_id=campaign_id,
    )  # fmt: skip


async def test_sms_reminder_then_calls_stopping_for_replies_and_opt_outs(
    runtime: Runtime, clock: Clock
) -> None:
    await staff("vol@ccas.test", Role.BENEVOLE)
    p = await _people(5)
    parent = await _journey(runtime, ["vol@ccas.test"])
    # Dispatch's outcome, written as receipts would: one number is unknown.
    await Message.filter(campaign_id=parent.id).update(status=MessageStatus.DELIVERED)
    await Message.filter(campaign_id=parent.id, person_id=p[2].id).update(
        status=MessageStatus.FAILED, error="numéro inconnu"
    )
    clock.now += timedelta(hours=3)
    await _reply(p[0], parent.id, clock.now)  # replied: the journey stops for them
    await OptOut.create(address=p[1].mobile, channel="sms", source="reply")  # STOP

    # Same day: the failed number goes to the call step at once.
    counts = await advance_journeys(runtime, clock.now)
    assert counts["reminders"] == 0 and counts["calls_after_failure"] == 1
    calls = await Campaign.get(parent_id=parent.id, step="appel")
    assert await CallTask.filter(campaign_id=calls.id).values_list("person_id", flat=True) == [
        p[2].id
    ]

    # Day 2: the reminder goes to those who gave no sign, not to the failed number.
    clock.now = parent.launched_at + timedelta(days=2, minutes=5)
    assert (await advance_journeys(runtime, clock.now))["reminders"] == 1
    reminder = await Campaign.get(parent_id=parent.id, step="relance")
    queued = await Message.filter(campaign_id=reminder.id, status=MessageStatus.QUEUED)
    assert {m.person_id for m in queued} == {p[3].id, p[4].id}
    assert (await advance_journeys(runtime, clock.now))["reminders"] == 0  # once only
    await Message.filter(campaign_id=reminder.id).update(status=MessageStatus.DELIVERED)
    await _reply(p[3], reminder.id, clock.now + timedelta(days=1))

    # Day 5: calls for those still silent; the failed number keeps its one task.
    clock.now = parent.launched_at + timedelta(days=5, minutes=5)
    assert (await advance_journeys(runtime, clock.now))["call_steps"] == 1
    tasks = {t.person_id: t for t in await CallTask.filter(campaign_id=calls.id)}
    assert set(tasks) == {p[2].id, p[4].id}
    assert tasks[p[2].id].origin == "echec_envoi" and tasks[p[4].id].origin == "parcours"

    # An opt-out after the task was made cancels it at the next tick.
    await OptOut.create(address=p[4].mobile, channel="sms", source="reply")
    assert (await advance_journeys(runtime, clock.now))["stopped"] == 1
    assert (await CallTask.get(id=tasks[p[4].id].id)).status == CallStatus.CANCELLED

    steps = {s["step"]: s for s in await journey_steps(await Campaign.get(id=parent.id))}
    assert (steps["invitation"]["recipients"], steps["invitation"]["failed"]) == (5, 1)
    assert (steps["invitation"]["replied"], steps["relance"]["recipients"]) == (1, 2)
    assert (steps["relance"]["replied"], steps["appel"]["tasks"]) == (1, 2)
    assert (steps["appel"]["open"], steps["appel"]["cancelled"]) == (1, 1)
    # The campaign page's funnel goes on with the journey's steps.
    state = await campaign_state(parent.id, runtime.settings, clock.now)
    assert (state["funnel"]["reminded"], state["funnel"]["called"]) == (2, 1)
    assert "Relancés : 2" in funnel_svg(state["funnel"])


async def test_callback_reply_moves_the_call_to_the_time_asked(
    runtime: Runtime, clock: Clock
) -> None:
    p = await _people(1)
    parent = await _journey(runtime, [])
    await Message.filter(campaign_id=parent.id).update(status=MessageStatus.FAILED)
    await advance_journeys(runtime, clock.now)
    task = await CallTask.get(person_id=p[0].id)
    assert task.status in OPEN_STATUSES
    # Monday 09:00 in Paris: "après 14h" is 14:00 the same day.
    reply = await _reply(p[0], parent.id, clock.now, text="rappelez-moi après 14h svp")
    processed = await process_reply(runtime, reply.id)
    assert processed is not None and processed.label == "callback"
    moved = await CallTask.get(id=task.id)
    local = moved.due_at.astimezone(runtime.settings.tz)
    assert (local.date(), local.hour, local.minute) == (clock.now.date(), 14, 0)
    assert "Rappel demandé par SMS" in moved.notes[-1]["text"]
    assert "14h" not in moved.notes[-1]["text"]  # the reply's words stay out of the sheet
    assert not await Escalation.exists(person_id=p[0].id, queue="rappel")


async def test_journey_refuses_templates_of_the_wrong_channel(runtime: Runtime) -> None:
    invite = await create_template("I", "sms", TemplateContent("Bonjour"), actor=ADMIN)
    audience, _ = await create_audience("Tous", {}, actor=ADMIN)
    with pytest.raises(Invalid, match="appel"):
        await create_campaign(
            name="X", channel="sms", template_id=invite.id, audience_id=audience.id, actor=ADMIN,
            settings=runtime.settings, now=runtime.clock(),
            journey={"call_days": 2, "call_template_id": invite.id},
        )  # fmt: skip
    with pytest.raises(Invalid, match="reminder_template_id"):
        await create_campaign(
            name="X", channel="sms", template_id=invite.id, audience_id=audience.id, actor=ADMIN,
            settings=runtime.settings, now=runtime.clock(), journey={"reminder_days": 2},
        )  # fmt: skip

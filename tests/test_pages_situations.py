"""Staff pages for situations: taking the next one, notes, resolving, who sees which replies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from campaigns.models import (
    AuditEvent,
    Campaign,
    CampaignRun,
    Escalation,
    Message,
    Reply,
    Staff,
    Template,
    TemplateVersion,
)
from tests.pages_support import assert_forms_carry_csrf, login, make_person, post_form


async def _escalation(queue: str = "urgence") -> Escalation:
    person = await make_person()
    reply = await Reply.create(
        provider_message_id=f"in-{person.id}",
        msisdn=person.mobile,
        text="je suis tombée",
        received_at=datetime.now(UTC),
        person_id=person.id,
        label="distress",
    )
    return await Escalation.create(
        person_id=person.id,
        msisdn=person.mobile,
        queue=queue,
        priority=3,
        open_key=f"p{person.id}:{queue}",
        due_at=datetime.now(UTC) + timedelta(minutes=42),
        reply_ids=[reply.id],
    )


async def test_caseworker_takes_next_notes_and_resolves(client, tokens) -> None:
    escalation = await _escalation()
    token = await login(client, "caseworker")
    queue = await (await client.get("/files/urgence")).text()
    assert "Prendre le suivant" in queue and 'data-due="' in queue and "dans 4" in queue
    assert_forms_carry_csrf(queue)
    taken = await post_form(client, "/files/urgence/suivant", token)
    assert taken.headers["Location"] == f"/situations/{escalation.id}"
    page = await (await client.get(taken.headers["Location"])).text()
    assert "je suis tombée" in page and "MARTIN" in page
    assert_forms_carry_csrf(page)
    staff = await Staff.get(email="caseworker@ccas.test")
    assert await AuditEvent.filter(
        action="person.view", actor_id=staff.id, object_id=str(escalation.person_id)
    ).exists()
    await post_form(client, f"/situations/{escalation.id}/note", token, text="Appelée, va bien")
    await post_form(client, f"/situations/{escalation.id}/cloturer", token, outcome="joint")
    await escalation.refresh_from_db()
    assert escalation.status.value == "resolved" and escalation.outcome == "joint"
    page = await (await client.get(f"/situations/{escalation.id}")).text()
    assert "Appelée, va bien" in page and "Rouvrir" in page
    await post_form(client, f"/situations/{escalation.id}/rouvrir", token)
    await escalation.refresh_from_db()
    assert escalation.status.value == "open"
    empty = await post_form(client, "/files/triage/suivant", token)
    assert (await (await client.get(empty.headers["Location"])).text()).count("Aucune situation")


async def test_caseworker_outside_the_queue_gets_403(client, tokens) -> None:
    escalation = await _escalation("rappel")
    staff = await Staff.get(email="caseworker@ccas.test")
    staff.queues = ["urgence"]
    await staff.save()
    token = await login(client, "caseworker")
    assert (await client.get("/files/rappel")).status == 403
    assert (await client.get(f"/situations/{escalation.id}")).status == 403
    refused = await post_form(client, f"/situations/{escalation.id}/note", token, text="x")
    assert refused.status == 403
    assert (await client.get("/personnes")).status == 403


async def _person_with_two_stories() -> dict[str, object]:
    """A distress reply in `urgence` and a callback in `rappel`, each answering a message."""
    person = await make_person()
    version = await TemplateVersion.create(
        template=await Template.create(name="Veille", channel="sms"), version=1, body="..."
    )
    campaign = await Campaign.create(name="Veille 2026", channel="sms", template_version=version)
    story: dict[str, object] = {"person": person}
    for number, (queue, text) in enumerate(
        [("urgence", "je suis tombée hier soir"), ("rappel", "oui rappelez-moi")], start=1
    ):
        message = await Message.create(
            run=await CampaignRun.create(campaign=campaign, number=number),
            campaign_id=campaign.id,
            person_id=person.id,
            channel="sms",
            text=f"Question {queue} : comment allez-vous ?",
        )
        reply = await Reply.create(
            provider_message_id=f"in-{person.id}-{queue}",
            msisdn=person.mobile,
            text=text,
            received_at=datetime.now(UTC) - timedelta(hours=3 - number),
            person_id=person.id,
            message_id=message.id,
            label="distress" if queue == "urgence" else "callback",
        )
        escalation = await Escalation.create(
            person_id=person.id,
            msisdn=person.mobile,
            queue=queue,
            open_key=f"p{person.id}:{queue}",
            due_at=datetime.now(UTC) + timedelta(hours=1),
            reply_ids=[reply.id],
        )
        await Reply.filter(id=reply.id).update(escalation_id=escalation.id)
        story[queue] = escalation
    return story


@pytest.mark.parametrize(
    ("role", "sees_distress"), [("caseworker", False), ("coordinator", True), ("admin", True)]
)
async def test_situation_page_hides_replies_from_queues_the_caseworker_does_not_work(
    client, tokens, role, sees_distress
) -> None:
    story = await _person_with_two_stories()
    await Staff.filter(email="caseworker@ccas.test").update(queues=["rappel"])
    await login(client, role)
    callback = story["rappel"]
    assert isinstance(callback, Escalation)
    page = await (await client.get(f"/situations/{callback.id}")).text()
    assert "oui rappelez-moi" in page and "Question rappel" in page
    urgent = story["urgence"]
    assert isinstance(urgent, Escalation)
    for secret in ("je suis tombée", "Question urgence", f'href="/situations/{urgent.id}"'):
        assert (secret in page) is sees_distress, secret
    if not sees_distress:
        assert (await client.get(f"/situations/{urgent.id}")).status == 403

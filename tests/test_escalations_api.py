"""The queues over HTTP: who sees what, the sort order, and the caseworker's actions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient

from campaigns import escalations as service
from campaigns.models import (
    AuditEvent,
    Campaign,
    CampaignRun,
    Escalation,
    Message,
    Person,
    Reply,
    Staff,
    Template,
    TemplateVersion,
)
from campaigns.runtime import Runtime
from tests.conftest import Tokens

NOW = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)


@pytest.fixture
def fixed(runtime: Runtime) -> Runtime:
    runtime.clock = lambda: NOW
    return runtime


async def escalated(
    runtime: Runtime, queue: str, *, text: str = "rappelez-moi", message_id: int | None = None
) -> tuple[Person, Escalation]:
    person = await Person.create(
        last_name="Dupont",
        first_name="Marcel",
        identity_key=f"dupont|marcel|{uuid.uuid4().hex}",
        mobile="+33612345678",
    )
    reply = await Reply.create(
        provider_message_id=uuid.uuid4().hex,
        msisdn="+33612345678",
        text=text,
        received_at=NOW,
        person_id=person.id,
        candidate_ids=[person.id],
        message_id=message_id,
    )
    label = {"urgence": "distress", "rappel": "callback"}.get(queue, "other")
    escalation = await service.escalate(reply=reply, queue=queue, label=label, runtime=runtime)
    return person, escalation


async def works_only(queues: list[str]) -> None:
    await Staff.filter(email="caseworker@ccas.test").update(queues=queues)


async def test_a_caseworker_sees_only_the_queues_they_work(
    client: TestClient, tokens: Tokens, fixed: Runtime
) -> None:
    await works_only(["rappel"])
    urgent_person, urgent = await escalated(fixed, "urgence", text="je suis tombée")
    _, callback = await escalated(fixed, "rappel")
    caseworker = tokens.headers("caseworker")

    refused = await client.get("/api/v1/escalations?queue=urgence", headers=caseworker)
    assert refused.status == 403
    assert (await refused.json())["error"] == "forbidden"
    listed = await client.get("/api/v1/escalations", headers=caseworker)
    assert [item["id"] for item in (await listed.json())["items"]] == [callback.id]
    for path in (
        f"/api/v1/escalations/{urgent.id}",
        f"/api/v1/people/{urgent_person.id}",
        f"/api/v1/escalations/{urgent.id}/claim",
        "/api/v1/queues/urgence/next",
    ):
        method = client.post if path.endswith(("claim", "next")) else client.get
        response = await method(path, headers=caseworker)
        assert response.status == 403, path
    assert await AuditEvent.filter(action="person.view").count() == 0

    everything = await client.get("/api/v1/escalations", headers=tokens.headers("coordinator"))
    assert {item["id"] for item in (await everything.json())["items"]} == {urgent.id, callback.id}
    queues = await client.get("/api/v1/queues", headers=caseworker)
    assert [q["code"] for q in (await queues.json())["queues"]] == ["rappel"]


async def test_the_view_shows_person_replies_and_message_and_is_audited(
    client: TestClient, tokens: Tokens, fixed: Runtime
) -> None:
    version = await TemplateVersion.create(
        template=await Template.create(name="Canicule", channel="sms"), version=1, body="..."
    )
    campaign = await Campaign.create(name="Canicule 2026", channel="sms", template_version=version)
    run = await CampaignRun.create(campaign=campaign, number=1)
    message = await Message.create(
        run=run, campaign_id=campaign.id, channel="sms", text="Bonjour, tout va bien ?"
    )
    person, escalation = await escalated(fixed, "rappel", message_id=message.id)
    headers = tokens.headers("caseworker")
    note = await client.post(
        f"/api/v1/escalations/{escalation.id}/notes", json={"text": "Appel lundi"}, headers=headers
    )
    assert note.status == 201
    response = await client.get(f"/api/v1/escalations/{escalation.id}", headers=headers)
    assert response.status == 200
    view = await response.json()
    assert view["person"]["last_name"] == "Dupont"
    assert [r["text"] for r in view["replies"]] == ["rappelez-moi"]
    assert [n["text"] for n in view["notes"]] == ["Appel lundi"]
    assert view["message"]["campaign_name"] == "Canicule 2026"
    assert view["message"]["text"] == "Bonjour, tout va bien ?"
    viewed = await AuditEvent.filter(action="person.view", object_id=str(person.id)).first()
    assert viewed is not None and viewed.actor_label == "caseworker@ccas.test"
    # The list itself carries no personal data.
    listed = await client.get("/api/v1/escalations", headers=headers)
    assert "Dupont" not in await listed.text() and "+3361" not in await listed.text()


async def test_the_list_is_sorted_by_priority_then_overdue_then_age(
    client: TestClient, tokens: Tokens, fixed: Runtime
) -> None:
    _, triage = await escalated(fixed, "triage")
    _, callback = await escalated(fixed, "rappel")
    _, urgent_on_time = await escalated(fixed, "urgence")
    _, urgent_late = await escalated(fixed, "urgence")
    await Escalation.filter(id=urgent_late.id).update(due_at=NOW - timedelta(minutes=5))
    headers = tokens.headers("coordinator")
    items = (await (await client.get("/api/v1/escalations", headers=headers)).json())["items"]
    assert [i["id"] for i in items] == [urgent_late.id, urgent_on_time.id, callback.id, triage.id]
    assert [i["overdue"] for i in items] == [True, False, False, False]
    assert items[0]["priority_label"] == "haute" and items[0]["queue_label"] == "Urgence"
    late = await client.get("/api/v1/escalations?overdue=true", headers=headers)
    assert [i["id"] for i in (await late.json())["items"]] == [urgent_late.id]
    bad = await client.get("/api/v1/escalations?assignee=lui", headers=headers)
    assert bad.status == 422


async def test_next_claim_snooze_resolve_reopen_over_http(
    client: TestClient, tokens: Tokens, fixed: Runtime
) -> None:
    headers = tokens.headers("caseworker")
    _, first = await escalated(fixed, "rappel")
    taken = await client.post("/api/v1/queues/rappel/next", headers=headers)
    assert taken.status == 200
    body = await taken.json()
    assert (body["id"], body["status"]) == (first.id, "claimed")
    assert body["assignee"]["id"] == (await Staff.get(email="caseworker@ccas.test")).id
    empty = await client.post("/api/v1/queues/rappel/next", headers=headers)
    assert empty.status == 404
    assert (await empty.json()) == {
        "error": "queue_empty",
        "detail": "Aucune situation à prendre dans la file « Rappel demandé »",
    }
    mine = await client.get("/api/v1/escalations?assignee=me", headers=headers)
    assert [i["id"] for i in (await mine.json())["items"]] == [first.id]
    nobody = await client.get("/api/v1/escalations?assignee=none", headers=headers)
    assert (await nobody.json())["items"] == []

    base = f"/api/v1/escalations/{first.id}"
    until = (NOW + timedelta(days=2)).isoformat()
    snoozed = await client.post(f"{base}/snooze", json={"until": until}, headers=headers)
    assert (await snoozed.json())["status"] == "snoozed"
    bad = await client.post(f"{base}/resolve", json={"outcome": "vacances"}, headers=headers)
    assert bad.status == 422
    done = await client.post(
        f"{base}/resolve",
        json={"outcome": "portage_repas", "note": "Repas dès lundi"},
        headers=headers,
    )
    assert (await done.json())["outcome_label"] == "Orienté·e vers le portage de repas"
    twice = await client.post(f"{base}/resolve", json={"outcome": "joint"}, headers=headers)
    assert twice.status == 409
    reopened = await client.post(f"{base}/reopen", headers=headers)
    assert (await reopened.json())["status"] == "open"
    actions = await AuditEvent.filter(object_type="escalation", actor_id__isnull=False).values_list(
        "action", flat=True
    )
    assert sorted(set(actions)) == [
        "escalation.claim",
        "escalation.reopen",
        "escalation.resolve",
        "escalation.snooze",
    ]


async def test_routes_declare_roles_and_appear_in_openapi(
    client: TestClient, tokens: Tokens
) -> None:
    document = await (await client.get("/api/openapi.json")).json()
    for path in (
        "/api/v1/escalations",
        "/api/v1/escalations/{id}",
        "/api/v1/queues/{queue}/next",
        "/api/v1/escalations/{id}/resolve",
        "/api/v1/escalations/{id}/snooze",
    ):
        operations = document["paths"][path]
        assert all(op["x-roles"] for op in operations.values()), path
    anonymous = await client.get("/api/v1/escalations")
    assert anonymous.status == 401

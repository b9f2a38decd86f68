"""The queues over HTTP: who sees what, the sort order, and the caseworker's actions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from campaigns import escalations as service
from campaigns.core.runtime import Runtime
from campaigns.escalations.queries import QueueCounts, queue_counts
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
from campaigns.registry import people
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


async def two_stories(runtime: Runtime) -> dict[str, Any]:
    """One person: a distress reply in `urgence`, a callback in `rappel`, a bare thanks.

    Each reply answers its own campaign message, so what a caseworker sees of the
    messages shows which replies they were shown.
    """
    person = await Person.create(
        last_name="Lefèvre",
        first_name="Odette",
        identity_key="lefevre|odette|",
        mobile="+33611223344",
    )
    version = await TemplateVersion.create(
        template=await Template.create(name="Veille", channel="sms"), version=1, body="..."
    )
    campaign = await Campaign.create(name="Veille 2026", channel="sms", template_version=version)
    story: dict[str, Any] = {"person": person}
    for number, (key, queue, text) in enumerate(
        [
            ("urgent", "urgence", "je suis tombée dans la cuisine"),
            ("callback", "rappel", "oui rappelez-moi"),
            ("thanks", None, "merci beaucoup"),
        ],
        start=1,
    ):
        run = await CampaignRun.create(campaign=campaign, number=number)
        message = await Message.create(
            run=run,
            campaign_id=campaign.id,
            person_id=person.id,
            channel="sms",
            text=f"Message {key} : comment allez-vous ?",
        )
        reply = await Reply.create(
            provider_message_id=uuid.uuid4().hex,
            msisdn=person.mobile,
            text=text,
            received_at=NOW + timedelta(minutes=number),
            person_id=person.id,
            candidate_ids=[person.id],
            message_id=message.id,
            label={"urgence": "distress", "rappel": "callback"}.get(queue or "", "thanks"),
        )
        if queue is not None:
            escalation = await service.escalate(
                reply=reply, queue=queue, label=reply.label or "", runtime=runtime
            )
            await Reply.filter(id=reply.id).update(escalation_id=escalation.id)
            story[key] = escalation
    return story


async def test_a_rappel_caseworker_never_sees_the_same_persons_distress_reply(
    client: TestClient, tokens: Tokens, fixed: Runtime
) -> None:
    await works_only(["rappel"])
    story = await two_stories(fixed)
    caseworker = tokens.headers("caseworker")
    refused = await client.get(f"/api/v1/escalations/{story['urgent'].id}", headers=caseworker)
    assert refused.status == 403
    shown = await client.get(f"/api/v1/escalations/{story['callback'].id}", headers=caseworker)
    assert shown.status == 200
    text = await shown.text()
    assert "tombée" not in text and "Message urgent" not in text and "merci" not in text
    view = await shown.json()
    assert [r["text"] for r in view["replies"]] == ["oui rappelez-moi"]
    assert view["message"]["text"] == "Message callback : comment allez-vous ?"

    # The history behind the situation page follows the same rule; coordinators see all.
    worker = await Staff.get(email="caseworker@ccas.test")
    coordinator = await Staff.get(email="coordinator@ccas.test")
    cases = [
        (worker, ["oui rappelez-moi"], ["callback"], []),
        (
            coordinator,
            ["merci beaucoup", "oui rappelez-moi", "je suis tombée dans la cuisine"],
            ["thanks", "callback", "urgent"],
            [story["urgent"].id],
        ),
    ]
    for staff, replies, messages, others in cases:
        history = await service.person_history(staff, story["callback"])
        assert [r.text for r in history["replies"]] == replies, staff.email
        assert [m.text.split()[1] for m in history["messages"]] == messages, staff.email
        assert [e.id for e in history["escalations"]] == others, staff.email
    everything = await client.get(
        f"/api/v1/escalations/{story['urgent'].id}", headers=tokens.headers("coordinator")
    )
    assert [r["text"] for r in (await everything.json())["replies"]] == [
        "je suis tombée dans la cuisine"
    ]


@pytest.mark.parametrize(
    ("queue", "resolved_days_ago", "caseworker_sees"),
    [
        ("rappel", None, True),  # still open
        ("rappel", 1, True),
        ("rappel", 29, True),  # follow-up calls in the days after
        ("rappel", 31, False),  # access ends 30 days after resolution
        ("rappel", 400, False),
        ("urgence", None, False),  # a queue the caseworker does not work
        ("urgence", 1, False),
    ],
)
async def test_access_to_a_person_ends_30_days_after_resolution(
    client: TestClient,
    tokens: Tokens,
    fixed: Runtime,
    queue: str,
    resolved_days_ago: int | None,
    caseworker_sees: bool,
) -> None:
    await works_only(["rappel"])
    person, escalation = await escalated(fixed, queue)
    if resolved_days_ago is not None:
        resolved_at = datetime.now(UTC) - timedelta(days=resolved_days_ago)
        await Escalation.filter(id=escalation.id).update(
            status="resolved", open_key=None, outcome="joint", resolved_at=resolved_at
        )
    url = f"/api/v1/people/{person.id}"
    seen = await client.get(url, headers=tokens.headers("caseworker"))
    assert seen.status == (200 if caseworker_sees else 403)
    for manager in ("coordinator", "admin"):
        assert (await client.get(url, headers=tokens.headers(manager))).status == 200


async def test_access_window_is_counted_from_the_resolution(fixed: Runtime, tokens: Tokens) -> None:
    await works_only(["rappel"])
    person, escalation = await escalated(fixed, "rappel")
    await Escalation.filter(id=escalation.id).update(
        status="resolved", open_key=None, outcome="joint", resolved_at=NOW
    )
    worker = await Staff.get(email="caseworker@ccas.test")
    window = people.FOLLOW_UP_ACCESS
    assert window == timedelta(days=30)
    paris = timezone(timedelta(hours=1))
    for now, allowed in [
        (NOW + window - timedelta(seconds=1), True),
        ((NOW + window).astimezone(paris), True),
        (NOW + window + timedelta(seconds=1), False),
    ]:
        assert await people.can_view_person(worker, person.id, now=now) is allowed, now


async def test_queue_counts_tell_active_waiting_overdue_and_mine(
    client: TestClient, tokens: Tokens, fixed: Runtime
) -> None:
    worker = await Staff.get(email="caseworker@ccas.test")
    _, late = await escalated(fixed, "urgence")
    await Escalation.filter(id=late.id).update(due_at=NOW - timedelta(minutes=1))
    _, claimed = await escalated(fixed, "rappel")
    await Escalation.filter(id=claimed.id).update(
        status="claimed", assignee_id=worker.id, due_at=NOW + timedelta(hours=1)
    )
    _, snoozed = await escalated(fixed, "rappel")
    # Past its due time, but a snoozed situation waits for its date: it is not late.
    await Escalation.filter(id=snoozed.id).update(status="snoozed", due_at=NOW - timedelta(hours=2))
    _, resolved = await escalated(fixed, "rappel")
    await Escalation.filter(id=resolved.id).update(status="resolved", open_key=None)

    paris = timezone(timedelta(hours=1))
    counts = await queue_counts(
        ["urgence", "rappel", "triage"], now=NOW.astimezone(paris), staff_id=worker.id
    )
    assert counts == {
        "urgence": QueueCounts(active=1, waiting=1, overdue=1, mine=0),
        "rappel": QueueCounts(active=2, waiting=1, overdue=0, mine=1),
        "triage": QueueCounts(),
    }
    listed = await client.get("/api/v1/queues", headers=tokens.headers("coordinator"))
    opened = {q["code"]: q["open"] for q in (await listed.json())["queues"]}
    assert opened == {"urgence": 1, "rappel": 2, "triage": 0, "suivi": 0}

"""The replies inbox over HTTP: list with filters, mark read, correct a label."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp.test_utils import TestClient

from campaigns.models import Escalation, Reply
from tests.conftest import Tokens


async def _reply(text: str, label: str) -> Reply:
    return await Reply.create(
        provider_message_id=f"api-{text}",
        msisdn="+33612345678",
        text=text,
        received_at=datetime.now(UTC),
        label=label,
        processed_at=datetime.now(UTC),
        explanation={"rules": [], "probabilities": {label: 0.8}},
    )


async def test_the_inbox_lists_filters_and_marks_read(client: TestClient, tokens: Tokens) -> None:
    thanks = await _reply("merci", "thanks")
    await _reply("qui êtes-vous", "other")
    headers = tokens.headers("coordinator")
    page = await (await client.get("/api/v1/replies", headers=headers)).json()
    assert page["total"] == 2 and page["unread"] == 2
    only = await (await client.get("/api/v1/replies?label=thanks", headers=headers)).json()
    assert [i["id"] for i in only["items"]] == [thanks.id]
    assert only["items"][0]["explanation"]["probabilities"] == {"thanks": 0.8}
    read = await client.post("/api/v1/replies/read", json={"ids": [thanks.id]}, headers=headers)
    assert (await read.json()) == {"changed": 1}
    unread = await (await client.get("/api/v1/replies?unread=true", headers=headers)).json()
    assert [i["text"] for i in unread["items"]] == ["qui êtes-vous"]


async def test_bad_filters_get_a_french_400(client: TestClient, tokens: Tokens) -> None:
    headers = tokens.headers("coordinator")
    for query in ("label=panique", "unread=peut-etre", "page=0", "campaign_id=x"):
        response = await client.get(f"/api/v1/replies?{query}", headers=headers)
        assert response.status == 422, query
        body = await response.json()
        assert body["error"] and body["detail"], query


async def test_a_correction_to_distress_opens_an_urgence(
    client: TestClient, tokens: Tokens
) -> None:
    reply = await _reply("super, plus de chauffage depuis lundi", "thanks")
    response = await client.post(
        f"/api/v1/replies/{reply.id}/label",
        json={"label": "distress"},
        headers=tokens.headers("coordinator"),
    )
    assert response.status == 200
    body = await response.json()
    assert body["previous"] == "thanks" and body["label"] == "distress"
    assert (await Escalation.get(id=body["escalation_id"])).queue == "urgence"
    wrong = await client.post(
        f"/api/v1/replies/{reply.id}/label",
        json={"label": "panique"},
        headers=tokens.headers("coordinator"),
    )
    assert wrong.status == 422


async def test_caseworkers_have_no_inbox(client: TestClient, tokens: Tokens) -> None:
    response = await client.get("/api/v1/replies", headers=tokens.headers("caseworker"))
    assert response.status == 403

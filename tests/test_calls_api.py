"""Call campaigns over HTTP: create, name callers, launch, take calls, outcomes, coverage."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from campaigns.models import AuditEvent, CallTask
from campaigns.web.keys import RUNTIME
from tests.call_support import SCRIPT, Clock, fragile_register
from tests.conftest import Tokens
from tests.pages_support import login


@pytest.fixture
def clock(client: TestClient) -> Clock:
    clock = Clock()
    runtime = client.app[RUNTIME]
    runtime.clock = clock
    # The script says the CCAS's name: launch refuses the placeholder one.
    runtime.settings.ccas_name = "CCAS de Test-sur-Mer"
    return clock


async def _post(client: TestClient, tokens: Tokens, role: str, path: str, body: Any) -> Any:
    response = await client.post(path, json=body, headers=tokens.headers(role))
    assert response.status in (200, 201), await response.text()
    return await response.json()


async def _call_campaign(client: TestClient, tokens: Tokens, callers: list[str]) -> int:
    template = await _post(
        client, tokens, "coordinator", "/api/v1/templates",
        {"name": "Script", "channel": "appel", "body": SCRIPT},
    )  # fmt: skip
    audience = await _post(
        client, tokens, "coordinator", "/api/v1/audiences",
        {"name": "Registre", "filter": {"segments_any": ["registre_fragiles"]}},
    )  # fmt: skip
    campaign = await _post(
        client, tokens, "coordinator", "/api/v1/campaigns",
        {"name": "Appels", "channel": "appel", "template_id": template["id"],
         "audience_id": audience["id"], "recurrence_days": 3},
    )  # fmt: skip
    response = await client.put(
        f"/api/v1/campaigns/{campaign['id']}/callers",
        json={"emails": callers},
        headers=tokens.headers("coordinator"),
    )
    assert response.status == 200, await response.text()
    assert [c["email"] for c in (await response.json())["callers"]] == sorted(callers)
    launched = await _post(
        client, tokens, "coordinator", f"/api/v1/campaigns/{campaign['id']}/launch", {}
    )
    assert launched["status"] == "running"
    return int(campaign["id"])


async def test_volunteer_takes_calls_and_sees_only_the_call_sheet(
    client: TestClient, tokens: Tokens, clock: Clock
) -> None:
    people = await fragile_register(3)
    campaign_id = await _call_campaign(client, tokens, ["benevole@ccas.test"])
    listing = await client.get(
        f"/api/v1/campaigns/{campaign_id}/calls", headers=tokens.headers("coordinator")
    )
    data = await listing.json()
    assert data["total"] == 3 and {i["status"] for i in data["items"]} == {"todo"}

    sheet = await _post(client, tokens, "benevole", "/api/v1/calls/next", {})
    person = next(p for p in people if p.id == sheet["person"]["id"])
    assert sheet["person"] == {
        "id": person.id, "first_name": person.first_name, "last_name": person.last_name
    }  # fmt: skip
    assert all(phone["href"].startswith("tel:+33") for phone in sheet["phones"])
    assert person.last_name in sheet["script"] and "{{" not in sheet["script"]
    text = str(sheet)
    for secret in ("1940", "rue des Lilas", "registre_fragiles", "Fille"):
        assert secret not in text
    assert await AuditEvent.exists(action="call.view", object_id=str(sheet["id"]))

    bad = await client.post(
        f"/api/v1/calls/{sheet['id']}/outcome",
        json={"outcome": "joint_besoin"},
        headers=tokens.headers("benevole"),
    )
    assert bad.status == 422
    done = await _post(
        client, tokens, "benevole", f"/api/v1/calls/{sheet['id']}/outcome",
        {"outcome": "joint_besoin", "orientation": "portage_repas", "note": "Repas midi"},
    )  # fmt: skip
    assert done["status"] == "done" and done["orientation"] == "portage_repas"

    for _ in range(2):
        sheet = await _post(client, tokens, "benevole", "/api/v1/calls/next", {})
        await _post(
            client, tokens, "benevole", f"/api/v1/calls/{sheet['id']}/outcome",
            {"outcome": "pas_de_reponse"},
        )  # fmt: skip
    empty = await client.post("/api/v1/calls/next", headers=tokens.headers("benevole"))
    assert empty.status == 204

    coverage = await client.get(
        f"/api/v1/campaigns/{campaign_id}/coverage", headers=tokens.headers("coordinator")
    )
    cover = await coverage.json()
    assert (cover["cycle"], cover["eligible"], cover["reached"], cover["unreached"]) == (1, 3, 1, 2)
    assert sum(d["eligible"] for d in cover["by_district"].values()) == 3
    assert [v["reached"] for v in cover["by_caller"].values()] == [1]
    assert len(cover["unreached_people"]) == 2


async def test_volunteer_is_kept_out_of_everything_else(
    client: TestClient, tokens: Tokens, clock: Clock
) -> None:
    await fragile_register(2)
    campaign_id = await _call_campaign(client, tokens, ["coordinator@ccas.test"])
    for method, path in (
        ("GET", "/api/v1/people"),
        ("GET", "/api/v1/escalations"),
        ("GET", "/api/v1/replies"),
        ("GET", f"/api/v1/campaigns/{campaign_id}/coverage"),
        ("GET", f"/api/v1/campaigns/{campaign_id}/calls"),
    ):
        response = await client.request(method, path, headers=tokens.headers("benevole"))
        assert response.status == 403, path
    # Not a caller of this campaign: nothing to take, and its calls are not found.
    assert (
        await client.post("/api/v1/calls/next", headers=tokens.headers("benevole"))
    ).status == 204
    task = await CallTask.filter(campaign_id=campaign_id).first()
    assert task is not None
    hidden = await client.get(f"/api/v1/calls/{task.id}", headers=tokens.headers("benevole"))
    assert hidden.status == 404


async def test_callers_must_be_known_accounts(
    client: TestClient, tokens: Tokens, clock: Clock
) -> None:
    campaign_id = await _call_campaign(client, tokens, [])
    response = await client.put(
        f"/api/v1/campaigns/{campaign_id}/callers",
        json={"emails": ["inconnu@ccas.test"]},
        headers=tokens.headers("coordinator"),
    )
    assert response.status == 422
    assert "inconnu@ccas.test" in (await response.json())["detail"]


async def test_campaign_page_data_counts_calls_and_journey_steps(
    client: TestClient, tokens: Tokens, clock: Clock
) -> None:
    await fragile_register(2)
    campaign_id = await _call_campaign(client, tokens, ["coordinator@ccas.test"])
    state = await (
        await client.get(f"/api/v1/campaigns/{campaign_id}", headers=tokens.headers("coordinator"))
    ).json()
    assert state["channel"] == "appel" and state["calls"]["todo"] == 2
    invite = await _post(
        client, tokens, "coordinator", "/api/v1/templates",
        {"name": "Invitation", "channel": "sms", "body": "Bonjour, appelez-nous"},
    )  # fmt: skip
    script_id = state["template"]["id"]
    bad = await client.post(
        "/api/v1/campaigns",
        json={"name": "Parcours", "channel": "sms", "template_id": invite["id"],
              "audience_id": state["audience_id"], "journey": {"call_days": 2}},
        headers=tokens.headers("coordinator"),
    )  # fmt: skip
    assert bad.status == 422
    created = await _post(
        client, tokens, "coordinator", "/api/v1/campaigns",
        {"name": "Parcours", "channel": "sms", "template_id": invite["id"],
         "audience_id": state["audience_id"],
         "journey": {"call_days": 2, "call_template_id": script_id}},
    )  # fmt: skip
    assert created["journey"]["call_days"] == 2
    journey = await (
        await client.get(f"/api/v1/campaigns/{created['id']}", headers=tokens.headers("admin"))
    ).json()
    assert [s["step"] for s in journey["journey_steps"]] == ["invitation", "appel"]


async def test_campaign_page_shows_calls_and_journey(
    client: TestClient, tokens: Tokens, clock: Clock
) -> None:
    await fragile_register(2)
    campaign_id = await _call_campaign(client, tokens, ["coordinator@ccas.test"])
    state = await (
        await client.get(f"/api/v1/campaigns/{campaign_id}", headers=tokens.headers("coordinator"))
    ).json()
    invite = await _post(
        client, tokens, "coordinator", "/api/v1/templates",
        {"name": "Invitation", "channel": "sms", "body": "Bonjour, appelez-nous"},
    )  # fmt: skip
    journey = await _post(
        client, tokens, "coordinator", "/api/v1/campaigns",
        {"name": "Parcours", "channel": "sms", "template_id": invite["id"],
         "audience_id": state["audience_id"],
         "journey": {"call_days": 2, "call_template_id": state["template"]["id"]}},
    )  # fmt: skip
    await login(client, "coordinator")
    calls_page = await (await client.get(f"/campagnes/{campaign_id}")).text()
    assert "Appels" in calls_page and "Couverture et appelant·es" in calls_page
    journey_page = await (await client.get(f"/campagnes/{journey['id']}")).text()
    assert "Parcours" in journey_page and "appel(s) prévu(s)" in journey_page

"""Campaigns over HTTP: the API from creation to export, sender warnings, test sends, roles."""

from __future__ import annotations

from typing import Any

import pytest

from campaigns.core.runtime import Runtime
from campaigns.models import Audience, AuditEvent, Campaign, CampaignStatus, Message
from campaigns.web.keys import RUNTIME
from tests.campaign_support import SIMPLE, RecordingQueue, person

# --- over HTTP ---------------------------------------------------------------------------


@pytest.fixture
def recorded(runtime: Runtime) -> Any:
    """The app's runtime with a recording queue, so launches here send nothing.

    The CCAS is configured: the API refuses to launch with the placeholder hotline.
    """
    runtime.settings = runtime.settings.model_copy(
        update={"ccas_name": "CCAS de Test-sur-Mer", "ccas_hotline": "0 800 12 34 56"}
    )
    original = runtime.queue
    runtime.queue = RecordingQueue()  # type: ignore[assignment]
    yield runtime.queue
    runtime.queue = original


async def _api_campaign(client: Any, headers: dict[str, str], **extra: Any) -> dict[str, Any]:
    template = await client.post(
        "/api/v1/templates",
        json={"name": "Invitation", "channel": "sms", "body": SIMPLE},
        headers=headers,
    )
    audience = await Audience.create(name="Domiciliés", criteria={"segments_any": ["domicilies"]})
    response = await client.post(
        "/api/v1/campaigns",
        json={
            "name": "Hiver",
            "channel": "sms",
            "template_id": (await template.json())["id"],
            "audience_id": audience.id,
            **extra,
        },
        headers=headers,
    )
    assert response.status == 201, await response.text()
    return await response.json()


async def test_campaign_over_http(client, tokens, recorded) -> None:
    """Create, preview, launch, follow, page through and export the per-recipient record."""
    headers = tokens.headers("coordinator")
    await person("Alpha", mobile="+33612345601")
    await person("Bravo", mobile="+33612345601")
    await person("Charlie", landline="+33322334455")
    created = await _api_campaign(client, headers, sender="+33612000000")
    assert created["status"] == "draft" and created["warnings"] == []
    base = f"/api/v1/campaigns/{created['id']}"

    preview = await (await client.post(f"{base}/preview-launch", headers=headers)).json()
    assert preview["recipients"] == 1
    assert preview["skipped_by_reason"] == {"duplicate_address": 1, "landline_only": 1}
    assert not await Message.exists(campaign_id=created["id"])

    launched = await client.post(f"{base}/launch", headers=headers)
    assert launched.status == 200
    assert (await launched.json())["recipients"] == 1
    assert len(recorded.jobs) == 1
    again = await client.post(f"{base}/launch", headers=headers)
    assert again.status == 409
    error = await again.json()
    assert error["error"] == "invalid_transition" and "en cours" in error["detail"]

    detail = await (await client.get(base, headers=headers)).json()
    assert detail["status"] == "running"
    assert detail["counts"]["queued"] == 1 and detail["counts"]["skipped"] == 2
    assert detail["skipped_by_reason"] == {"duplicate_address": 1, "landline_only": 1}
    assert detail["cost_estimate"]["total"] == "0.07"  # 1 part x 0.0650, rounded to cents
    assert detail["audience_count"] == 3 and len(detail["runs"]) == 1

    page = await (await client.get(f"{base}/messages?status=skipped", headers=headers)).json()
    assert page["total"] == 2 and page["pages"] == 1
    assert {m["skip_reason"] for m in page["items"]} == {"duplicate_address", "landline_only"}
    bad = await client.get(f"{base}/messages?status=perdu", headers=headers)
    assert bad.status == 422

    export = await client.get(f"{base}/messages.csv", headers=headers)
    assert export.status == 200 and export.content_type == "text/csv"
    lines = (await export.text()).strip().splitlines()
    assert lines[0].startswith("id,run_id,person_id,channel,address,status,skip_reason")
    assert len(lines) == 4
    assert await AuditEvent.exists(action="campaign.export", object_id=str(created["id"]))

    listing = await (await client.get("/api/v1/campaigns", headers=headers)).json()
    assert listing["items"][0]["counts"] == {"queued": 1, "skipped": 2}

    assert (await client.post(f"{base}/pause", headers=headers)).status == 200
    assert (await client.post(f"{base}/pause", headers=headers)).status == 409
    resumed = await (await client.post(f"{base}/resume", headers=headers)).json()
    assert resumed["status"] == "running"
    cancelled = await (await client.post(f"{base}/cancel", headers=headers)).json()
    assert cancelled == {"status": "cancelled", "cancelled_messages": 1}


async def test_http_warns_about_an_alphanumeric_sender(client, tokens, recorded) -> None:
    created = await _api_campaign(client, tokens.headers("admin"), sender="MAIRIE")
    assert [w["code"] for w in created["warnings"]] == ["alphanumeric_sender"]
    assert "MAIRIE" in created["warnings"][0]["detail"]


async def test_test_send_goes_to_the_callers_own_phone(client, tokens, recorded, runtime) -> None:
    from campaigns.models import Staff
    from providers.console import read_outbox

    headers = tokens.headers("coordinator")
    created = await _api_campaign(client, headers)
    url = f"/api/v1/campaigns/{created['id']}/test-send"
    no_phone = await client.post(url, json={}, headers=headers)
    assert no_phone.status == 422
    assert (await no_phone.json())["error"] == "no_test_address"
    await Staff.filter(email="coordinator@ccas.test").update(phone="06 12 34 56 99")
    sent = await client.post(url, json={}, headers=headers)
    assert sent.status == 200
    result = await sent.json()
    assert (result["outcome"], result["to"], result["segments"]) == ("submitted", "+33612345699", 1)
    outbox = read_outbox(runtime.settings.outbox_dir)
    assert len(outbox) == 1
    assert not await Message.exists()  # a test is not part of the campaign's record
    assert await AuditEvent.exists(action="campaign.test_send")


async def test_caseworkers_get_403_on_campaign_routes(client, tokens, recorded) -> None:
    created = await _api_campaign(client, tokens.headers("coordinator"))
    headers = tokens.headers("caseworker")
    base = f"/api/v1/campaigns/{created['id']}"
    for method, path in [
        ("GET", "/api/v1/campaigns"),
        ("POST", "/api/v1/campaigns"),
        ("GET", base),
        ("POST", f"{base}/launch"),
        ("POST", f"{base}/preview-launch"),
        ("POST", f"{base}/pause"),
        ("POST", f"{base}/resume"),
        ("POST", f"{base}/cancel"),
        ("POST", f"{base}/test-send"),
        ("GET", f"{base}/messages"),
        ("GET", f"{base}/messages.csv"),
    ]:
        response = await client.request(method, path, json={}, headers=headers)
        assert response.status == 403, (method, path)
    assert (await Campaign.get(id=created["id"])).status == CampaignStatus.DRAFT


async def test_the_api_refuses_a_launch_with_the_placeholder_hotline(
    client, tokens, recorded
) -> None:
    """A placeholder number sent to thousands cannot be taken back: the API refuses it too."""
    headers = tokens.headers("coordinator")
    await person("Alpha", mobile="+33612345601")
    runtime = client.app[RUNTIME]
    runtime.settings = runtime.settings.model_copy(update={"ccas_hotline": "0800 000 000"})
    template = await client.post(
        "/api/v1/templates",
        json={"name": "Ligne", "channel": "sms", "body": "Appelez le {{ ccas.hotline }}"},
        headers=headers,
    )
    assert template.status == 201, await template.text()
    created = await _api_campaign(
        client, headers, sender="+33612000000", template_id=(await template.json())["id"]
    )
    refused = await client.post(f"/api/v1/campaigns/{created['id']}/launch", headers=headers)
    assert refused.status == 409
    body = await refused.json()
    assert body["error"] == "placeholder" and "0800 000 000" in body["detail"]
    assert not await Message.exists(campaign_id=created["id"])

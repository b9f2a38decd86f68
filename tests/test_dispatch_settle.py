"""The settle step: unconfirmed messages past the receipt window are counted, then re-sent
or closed as not sent by a coordinator; both audited, nothing left unsaid."""

from __future__ import annotations

from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient

from campaigns.campaign.progress import campaign_state
from campaigns.campaign.reports import campaign_stats
from campaigns.core.errors import Conflict
from campaigns.core.runtime import Runtime
from campaigns.dispatch import settle
from campaigns.models import AuditEvent, Campaign, CampaignStatus, Message, MessageStatus
from tests.conftest import Tokens
from tests.dispatch_runs import dispatch_runtime, queue, sent_ids
from tests.dispatch_support import ACTOR, T_MONDAY, counts, make_run
from tests.pages_support import login, post_form

M = MessageStatus
HOURS = 6


@pytest.fixture
def rt(runtime: Runtime) -> Runtime:
    return dispatch_runtime(runtime)


async def completed_with_unconfirmed(n: int, unconfirmed: int) -> tuple[Campaign, list[int]]:
    """A completed campaign: n sent, of which the first `unconfirmed` left without answer."""
    campaign, run = await make_run(n)
    ids = sorted(await Message.filter(run_id=run.id).values_list("id", flat=True))
    await Message.filter(id__in=ids).update(status=M.SUBMITTED, sent_at=T_MONDAY, attempts=1)
    await Message.filter(id__in=ids[:unconfirmed]).update(
        status=M.UNCONFIRMED, sent_at=None, handed_at=T_MONDAY, claimed_by="dead-1-x"
    )
    await Campaign.filter(id=campaign.id).update(status=CampaignStatus.COMPLETED)
    await run.__class__.filter(id=run.id).update(completed_at=T_MONDAY)
    return campaign, ids


async def test_unconfirmed_messages_are_counted_once_the_receipt_window_is_over(
    rt: Runtime, db: str
) -> None:
    campaign, _ = await completed_with_unconfirmed(5, 2)
    within = T_MONDAY + timedelta(hours=HOURS - 1)
    after = T_MONDAY + timedelta(hours=HOURS, minutes=1)
    assert await settle.unconfirmed_overdue(campaign.id, within, HOURS) == 0
    assert await settle.unconfirmed_overdue(campaign.id, after, HOURS) == 2
    stats = await campaign_stats(campaign.id, rt.settings, after)
    assert stats["unconfirmed_overdue"] == 2
    [warning] = [w for w in stats["warnings"] if w["code"] == "unconfirmed_overdue"]
    assert warning["detail"].startswith("2 messages non confirmés : aucun accusé de réception 6 h")
    # The campaign state (API and live page) carries the figure.
    state = await campaign_state(campaign.id, rt.settings)
    assert state["unconfirmed_overdue"] == 2


async def test_a_coordinator_resends_them_warned_and_audited(rt: Runtime, db: str) -> None:
    campaign, ids = await completed_with_unconfirmed(5, 2)
    rt.clock.now = T_MONDAY + timedelta(hours=HOURS + 1)  # type: ignore[attr-defined]
    result = await settle.resend_unconfirmed(campaign.id, actor=ACTOR, runtime=rt)
    assert result["resent"] == 2 and "deux fois" in result["warning"]
    assert result["status"] == "running"
    await queue(rt).run_until_idle()
    assert await counts(campaign.id) == {"submitted": 5}
    assert sorted(sent_ids(rt)) == sorted(str(i) for i in ids[:2])
    assert (await Campaign.get(id=campaign.id)).status == CampaignStatus.COMPLETED
    event = await AuditEvent.get(action="campaign.unconfirmed_resend")
    assert (event.object_id, event.detail) == (str(campaign.id), {"messages": 2})


async def test_a_coordinator_closes_them_as_not_sent(rt: Runtime, db: str) -> None:
    campaign, ids = await completed_with_unconfirmed(4, 3)
    now = T_MONDAY + timedelta(hours=HOURS + 1)
    result = await settle.close_unconfirmed(campaign.id, actor=ACTOR, settings=rt.settings, now=now)
    assert result["closed"] == 3
    closed = await Message.filter(id__in=ids[:3])
    assert {(m.status, m.settled_at) for m in closed} == {(M.FAILED, now)}
    assert all(m.error and m.error.startswith("Classé comme non envoyé") for m in closed)
    assert await settle.unconfirmed_overdue(campaign.id, now, HOURS) == 0
    event = await AuditEvent.get(action="campaign.unconfirmed_close")
    assert event.detail == {"messages": 3}
    assert sent_ids(rt) == {}


async def test_messages_still_within_the_window_are_left_to_their_receipts(
    rt: Runtime, db: str
) -> None:
    campaign, _ = await completed_with_unconfirmed(3, 2)
    rt.clock.now = T_MONDAY + timedelta(hours=1)  # type: ignore[attr-defined]
    assert (await settle.resend_unconfirmed(campaign.id, actor=ACTOR, runtime=rt))["resent"] == 0
    assert await counts(campaign.id) == {"unconfirmed": 2, "submitted": 1}


async def test_a_cancelled_campaign_is_not_resent(rt: Runtime, db: str) -> None:
    campaign, _ = await completed_with_unconfirmed(3, 1)
    await Campaign.filter(id=campaign.id).update(status=CampaignStatus.CANCELLED)
    rt.clock.now = T_MONDAY + timedelta(hours=HOURS + 1)  # type: ignore[attr-defined]
    with pytest.raises(Conflict):
        await settle.resend_unconfirmed(campaign.id, actor=ACTOR, runtime=rt)


async def test_the_api_and_the_campaign_page_offer_both_choices(
    rt: Runtime, client: TestClient, tokens: Tokens, db: str
) -> None:
    campaign, _ = await completed_with_unconfirmed(4, 2)
    rt.clock.now = T_MONDAY + timedelta(hours=HOURS + 1)  # type: ignore[attr-defined]
    response = await client.get(
        f"/api/v1/campaigns/{campaign.id}", headers=tokens.headers("coordinator")
    )
    assert (await response.json())["unconfirmed_overdue"] == 2
    token = await login(client, "coordinator")
    page = await (await client.get(f"/campagnes/{campaign.id}")).text()
    assert "2 messages non confirmés" in page
    assert f"/campagnes/{campaign.id}/non-confirmes/renvoyer" in page
    assert f"/campagnes/{campaign.id}/non-confirmes/classer" in page
    response = await post_form(client, f"/campagnes/{campaign.id}/non-confirmes/classer", token)
    assert response.status == 303
    assert await counts(campaign.id) == {"submitted": 2, "failed": 2}
    # Nothing left to decide: the buttons are gone.
    page = await (await client.get(f"/campagnes/{campaign.id}")).text()
    assert "non-confirmes/renvoyer" not in page
    response = await client.post(
        f"/api/v1/campaigns/{campaign.id}/unconfirmed/resend",
        headers=tokens.headers("coordinator"),
    )
    assert response.status == 200 and (await response.json())["resent"] == 0
    response = await client.post(
        f"/api/v1/campaigns/{campaign.id}/unconfirmed/close", headers=tokens.headers("caseworker")
    )
    assert response.status == 403


async def test_the_web_answers_503_while_the_database_is_away(
    client: TestClient, tokens: Tokens, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from campaigns.web.api import campaigns as api

    async def away(*args: object, **kwargs: object) -> None:
        raise ConnectionRefusedError(111, "Connect call failed")

    monkeypatch.setattr(api, "campaign_state", away)
    response = await client.get("/api/v1/campaigns/1", headers=tokens.headers("coordinator"))
    assert response.status == 503
    assert int(response.headers["Retry-After"]) > 0
    assert (await response.json())["error"] == "unavailable"

"""Security findings of issue 12, access side: the 30-day rule on every path that shows a
person, revocable sessions and tokens, the forced password change on the API, login redirects."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient

from campaigns import escalations as service
from campaigns import staff as staff_service
from campaigns.core.audit import Actor
from campaigns.core.runtime import Runtime
from campaigns.models import ApiToken, AuditEvent, Escalation, Person, Reply, Role, Staff
from tests.conftest import Tokens
from tests.pages_support import PASSWORD, csrf, login, post_form

NOW = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)


@pytest.fixture
def fixed(runtime: Runtime) -> Runtime:
    runtime.clock = lambda: NOW
    return runtime


async def _resolved(runtime: Runtime, days_ago: int) -> tuple[Person, Escalation]:
    person = await Person.create(
        last_name="Dupont",
        first_name="Marcel",
        identity_key=f"dupont|marcel|{uuid.uuid4().hex}",
        mobile="+33612345678",
    )
    reply = await Reply.create(
        provider_message_id=uuid.uuid4().hex,
        msisdn="+33612345678",
        text="rappelez-moi",
        received_at=NOW - timedelta(days=days_ago + 1),
        person_id=person.id,
        candidate_ids=[person.id],
    )
    escalation = await service.escalate(
        reply=reply, queue="rappel", label="callback", runtime=runtime
    )
    await Escalation.filter(id=escalation.id).update(
        status="resolved",
        open_key=None,
        outcome="joint",
        resolved_at=NOW - timedelta(days=days_ago),
    )
    return person, escalation


# --- the 30-day rule -------------------------------------------------------------------


@pytest.mark.parametrize(("days_ago", "sees"), [(29, True), (31, False), (400, False)])
async def test_a_caseworker_reads_a_resolved_situation_for_30_days_only(
    client: TestClient, tokens: Tokens, fixed: Runtime, days_ago: int, sees: bool
) -> None:
    _, escalation = await _resolved(fixed, days_ago)
    url = f"/api/v1/escalations/{escalation.id}"
    seen = await client.get(url, headers=tokens.headers("caseworker"))
    assert seen.status == (200 if sees else 403)
    if not sees:
        body = await seen.json()
        assert body["error"] == "follow_up_over"
        assert "Dupont" not in await seen.text()
    listed = await client.get(
        "/api/v1/escalations?status=resolved", headers=tokens.headers("caseworker")
    )
    ids = [item["id"] for item in (await listed.json())["items"]]
    assert (escalation.id in ids) is sees
    note = await client.post(
        f"{url}/notes", json={"text": "rappel"}, headers=tokens.headers("caseworker")
    )
    assert note.status == (201 if sees else 403)
    # Managers keep seeing it.
    assert (await client.get(url, headers=tokens.headers("coordinator"))).status == 200


async def test_the_situation_page_follows_the_30_day_rule(client, tokens, fixed) -> None:
    _, old = await _resolved(fixed, 31)
    await login(client, "caseworker")
    page = await client.get(f"/situations/{old.id}", allow_redirects=False)
    assert page.status == 403
    assert "Dupont" not in await page.text()


async def test_reopening_an_old_situation_is_a_coordinators_audited_act(
    client: TestClient, tokens: Tokens, fixed: Runtime
) -> None:
    _, old = await _resolved(fixed, 31)
    url = f"/api/v1/escalations/{old.id}/reopen"
    refused = await client.post(url, headers=tokens.headers("caseworker"))
    assert refused.status == 403
    assert (await Escalation.get(id=old.id)).status == "resolved"
    reopened = await client.post(url, headers=tokens.headers("coordinator"))
    assert reopened.status == 200
    event = await AuditEvent.get(action="escalation.reopen", object_id=str(old.id))
    assert event.detail["after_follow_up"] is True
    # A recent one a caseworker still reopens, and the audit says so.
    _, recent = await _resolved(fixed, 2)
    recent_url = f"/api/v1/escalations/{recent.id}/reopen"
    assert (await client.post(recent_url, headers=tokens.headers("caseworker"))).status == 200


async def test_an_out_of_range_escalation_id_is_a_404_not_a_500(client, tokens) -> None:
    for value in ("2147483648", "99999999999999999999", "-1", "0"):
        response = await client.get(f"/api/v1/escalations/{value}", headers=tokens.headers("admin"))
        assert 400 <= response.status < 500, value
        assert set(await response.json()) == {"error", "detail"}


# --- revocable sessions and tokens -----------------------------------------------------


async def _session_cookie(client: TestClient) -> str:
    return client.session.cookie_jar.filter_cookies(client.make_url("/"))["campaigns_session"].value


async def test_logout_ends_the_session_even_when_the_cookie_was_copied(client, tokens) -> None:
    token = await login(client, "coordinator")
    copied = await _session_cookie(client)
    out = await post_form(client, "/deconnexion", token)
    assert out.status == 302
    replay = await client.get("/", cookies={"campaigns_session": copied}, allow_redirects=False)
    assert replay.status == 302 and replay.headers["Location"].startswith("/connexion")
    # The account's bearer tokens end with it.
    api = await client.get("/api/v1/queues", headers=tokens.headers("coordinator"))
    assert api.status == 401


async def test_password_change_ends_other_sessions_and_tokens(client, tokens) -> None:
    token = await login(client, "caseworker")
    other = await _session_cookie(client)
    changed = await post_form(
        client,
        "/mot-de-passe",
        token,
        current=PASSWORD,
        new="un-tout-nouveau-mot",
        confirm="un-tout-nouveau-mot",
    )
    assert changed.status == 302 and changed.headers["Location"] == "/"
    # This browser goes on, renewed; the copy of the old cookie and the old token do not.
    assert (await client.get("/", allow_redirects=False)).status == 200
    client.session.cookie_jar.clear()
    stale = await client.get("/", cookies={"campaigns_session": other}, allow_redirects=False)
    assert stale.status == 302
    old_token = await client.get("/api/v1/queues", headers=tokens.headers("caseworker"))
    assert old_token.status == 401


async def test_deactivation_and_role_change_end_sessions_and_tokens(client, tokens) -> None:
    admin = Actor.cli()
    worker = await Staff.get(email="caseworker@ccas.test")
    await staff_service.set_role(worker.id, Role.COORDINATOR, actor=admin)
    assert (await client.get("/api/v1/queues", headers=tokens.headers("caseworker"))).status == 401
    coordinator = await Staff.get(email="coordinator@ccas.test")
    await login(client, "coordinator")
    await staff_service.toggle_active(coordinator.id, actor=admin)
    assert (await client.get("/", allow_redirects=False)).status == 302
    assert await ApiToken.filter(staff_id=coordinator.id, revoked_at__isnull=True).count() == 0


async def test_staff_list_and_revoke_their_tokens_admins_anyones(client, tokens) -> None:
    worker = await Staff.get(email="caseworker@ccas.test")
    spare = await staff_service.issue_token(worker, label="tablette")
    mine = await client.get("/api/v1/auth/tokens", headers={"Authorization": f"Bearer {spare}"})
    items = (await mine.json())["items"]
    assert {item["label"] for item in items} == {"", "tablette"}
    spare_id = next(item["id"] for item in items if item["label"] == "tablette")
    # A coordinator neither sees nor revokes a caseworker's token.
    others = await client.get(
        f"/api/v1/auth/tokens?staff_id={worker.id}", headers=tokens.headers("coordinator")
    )
    assert others.status == 403
    stranger = await client.delete(
        f"/api/v1/auth/tokens/{spare_id}", headers=tokens.headers("coordinator")
    )
    assert stranger.status == 404
    revoked = await client.delete(
        f"/api/v1/auth/tokens/{spare_id}", headers=tokens.headers("admin")
    )
    assert revoked.status == 200 and (await revoked.json())["revoked_at"]
    gone = await client.get("/api/v1/queues", headers={"Authorization": f"Bearer {spare}"})
    assert gone.status == 401
    # Still working: the caseworker's other token.
    assert (await client.get("/api/v1/queues", headers=tokens.headers("caseworker"))).status == 200
    document = await (await client.get("/api/openapi.json")).json()
    assert {"/api/v1/auth/tokens", "/api/v1/auth/tokens/{id}"} <= set(document["paths"])


async def test_a_one_time_password_opens_neither_the_api_nor_blocks_logout(client, db) -> None:
    await staff_service.create_staff("nouveau@ccas.test", Role.COORDINATOR)
    staff = await Staff.get(email="nouveau@ccas.test")
    staff.password_hash = staff_service.hash_password(PASSWORD)
    await staff.save()
    token = await csrf(client)
    logged = await client.post(
        "/connexion",
        data={"email": "nouveau@ccas.test", "password": PASSWORD, "csrf_token": token},
        allow_redirects=False,
    )
    assert logged.status == 302
    api = await client.get("/api/v1/queues")
    assert api.status == 403
    assert (await api.json())["error"] == "password_change_required"
    token = await csrf(client, "/mot-de-passe")
    out = await post_form(client, "/deconnexion", token)
    assert (out.status, out.headers["Location"]) == (302, "/connexion")
    assert (await client.get("/mot-de-passe", allow_redirects=False)).status == 302


# --- where a login may send the browser ------------------------------------------------


@pytest.mark.parametrize(
    "suite",
    [
        "/\t/evil.example",
        "//evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "https://evil.example",
        "/a\r\nSet-Cookie: x",
        "javascript:alert(1)",
        "/ok//evil",
    ],
)
async def test_login_only_goes_to_a_plain_local_path(client, tokens, suite: str) -> None:
    form = await client.get("/connexion", params={"suite": suite})
    assert 'value="/"' in await form.text() or "evil" not in await form.text()
    token = await csrf(client)
    response = await client.post(
        "/connexion",
        data={
            "email": "admin@ccas.test",
            "password": PASSWORD,
            "csrf_token": token,
            "suite": suite,
        },
        allow_redirects=False,
    )
    assert (response.status, response.headers["Location"]) == (302, "/")


async def test_login_keeps_a_plain_local_path(client, tokens) -> None:
    token = await csrf(client)
    response = await client.post(
        "/connexion",
        data={
            "email": "admin@ccas.test",
            "password": PASSWORD,
            "csrf_token": token,
            "suite": "/personnes?q=dupont&page=2",
        },
        allow_redirects=False,
    )
    assert response.headers["Location"] == "/personnes?q=dupont&page=2"

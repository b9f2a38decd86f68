"""Staff pages: login, sessions, CSRF, security headers, login throttling."""

from __future__ import annotations

import re

from aiohttp.test_utils import TestClient


async def _csrf(client: TestClient, path: str = "/connexion") -> str:
    html = await (await client.get(path)).text()
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the form carries a CSRF token"
    return match.group(1)


async def _login(client: TestClient, email: str, password: str = "mot-de-passe-solide") -> int:
    token = await _csrf(client)
    response = await client.post(
        "/connexion",
        data={"email": email, "password": password, "csrf_token": token, "suite": "/"},
        allow_redirects=False,
    )
    return response.status


async def test_anonymous_is_sent_to_login(client, tokens) -> None:
    response = await client.get("/", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"].startswith("/connexion")


async def test_login_then_dashboard_in_french(client, tokens) -> None:
    assert await _login(client, "coordinator@ccas.test") == 302
    response = await client.get("/")
    html = await response.text()
    assert response.status == 200
    assert "Tableau de bord" in html
    assert "Campagnes en cours" in html


async def test_login_without_csrf_is_refused(client, tokens) -> None:
    await client.get("/connexion")
    response = await client.post(
        "/connexion", data={"email": "admin@ccas.test", "password": "mot-de-passe-solide"}
    )
    assert response.status == 403


async def test_security_headers_on_pages(client, tokens) -> None:
    response = await client.get("/connexion")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    cookie = response.headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


async def test_failed_logins_are_throttled(client, tokens) -> None:
    statuses = [await _login(client, "admin@ccas.test", "mauvais") for _ in range(6)]
    assert statuses[:5] == [401] * 5
    assert statuses[5] == 429
    # Even the right password waits out the throttle.
    assert await _login(client, "admin@ccas.test") == 429


async def test_caseworker_gets_french_403_on_admin_page_but_sees_dashboard(client, tokens) -> None:
    assert await _login(client, "caseworker@ccas.test") == 302
    assert (await client.get("/")).status == 200


async def test_session_api_call_needs_csrf_header(client, tokens) -> None:
    assert await _login(client, "admin@ccas.test") == 302
    body = {"name": "x", "filter": {}}
    refused = await client.post("/api/v1/auth/token", json={"email": "a", "password": "b"})
    assert refused.status == 403
    assert body  # the same call with the header passes the CSRF check (then fails auth)
    token = await _csrf(client, "/")
    allowed = await client.post(
        "/api/v1/auth/token",
        json={"email": "a@b.c", "password": "b"},
        headers={"X-CSRF-Token": token},
    )
    assert allowed.status == 401


async def test_logout_ends_the_session(client, tokens) -> None:
    assert await _login(client, "admin@ccas.test") == 302
    token = await _csrf(client, "/")
    await client.post("/deconnexion", data={"csrf_token": token}, allow_redirects=False)
    response = await client.get("/", allow_redirects=False)
    assert response.status == 302


async def test_a_one_time_password_must_be_replaced_before_anything_else(client, db) -> None:
    from campaigns import staff as staff_service

    staff, one_time = await staff_service.create_staff("nouvelle@ccas.test", "coordinator")
    assert staff.must_change_password
    assert await _login(client, "nouvelle@ccas.test", one_time) == 302
    blocked = await client.get("/personnes", allow_redirects=False)
    assert (blocked.status, blocked.headers["Location"]) == (302, "/mot-de-passe")
    token = await _csrf(client, "/mot-de-passe")
    mismatch = await client.post(
        "/mot-de-passe",
        data={"csrf_token": token, "current": one_time, "new": "x" * 12, "confirm": "y" * 12},
    )
    assert "ne sont pas identiques" in await mismatch.text()
    done = await client.post(
        "/mot-de-passe",
        data={"csrf_token": token, "current": one_time, "new": "z" * 12, "confirm": "z" * 12},
        allow_redirects=False,
    )
    assert (done.status, done.headers["Location"]) == (302, "/")
    assert (await client.get("/personnes")).status == 200
    assert not staff_service.verify_password(
        (await staff_service.Staff.get(id=staff.id)).password_hash, one_time
    )

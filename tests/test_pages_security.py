"""Staff pages: login, sessions, CSRF, security headers, login throttling; the web layer's shape."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from aiohttp.test_utils import TestClient

import campaigns.web


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


async def test_an_admin_cannot_deactivate_their_own_account(client, tokens) -> None:
    from campaigns import staff as staff_service

    admin = await staff_service.Staff.get(email="admin@ccas.test")
    assert await _login(client, "admin@ccas.test") == 302
    token = await _csrf(client, "/equipe")
    refused = await client.post(f"/equipe/{admin.id}/activation", data={"csrf_token": token})
    assert "Vous ne pouvez pas désactiver votre propre compte." in await refused.text()
    await admin.refresh_from_db()
    assert admin.active
    unknown = await client.post("/equipe/999999/activation", data={"csrf_token": token})
    assert unknown.status == 404


# --- the web layer's shape: handlers parse, call the domain and render ------------------

WEB = Path(campaigns.web.__file__).parent
# Tortoise model and queryset methods: a handler calling one is doing the domain's work.
QUERY_METHODS = {
    "all", "annotate", "bulk_create", "bulk_update", "count", "create", "delete", "exclude",
    "execute_query", "exists", "fetch_related", "filter", "first", "get", "get_or_create",
    "get_or_none", "prefetch_related", "raw", "refresh_from_db", "save", "select_for_update",
    "update", "update_or_create", "values", "values_list",
}  # fmt: skip


def _web_modules() -> list[tuple[str, ast.Module]]:
    return [
        (str(path.relative_to(WEB.parent.parent)), ast.parse(path.read_text(encoding="utf-8")))
        for path in sorted(WEB.rglob("*.py"))
    ]


def _imported(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return names


def test_no_import_inside_a_function_in_the_web_layer() -> None:
    # A function-level import is how a cycle between web modules hides: there is none left.
    found = []
    for name, tree in _web_modules():
        for func in ast.walk(tree):
            if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                for node in ast.walk(func):
                    if isinstance(node, ast.Import | ast.ImportFrom):
                        found.append(f"{name}:{node.lineno}")
    assert not found


def test_the_web_layer_leaves_the_database_to_the_domain() -> None:
    found = []
    for name, tree in _web_modules():
        if any(module.split(".")[0] == "tortoise" for module in _imported(tree)):
            found.append(f"{name}: imports tortoise")
        models = {
            alias.asname or alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            and (node.module or "").startswith("campaigns.models")
            for alias in node.names
        }
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            target = node.func.value
            on_model = isinstance(target, ast.Name) and target.id in models
            if node.func.attr in QUERY_METHODS and on_model:
                found.append(f"{name}:{node.lineno} {target.id}.{node.func.attr}()")  # type: ignore[union-attr]
            if node.func.attr in {"fetch_related", "save", "refresh_from_db", "execute_query"}:
                found.append(f"{name}:{node.lineno} .{node.func.attr}()")
    # Only /healthz's `SELECT 1` is left, until campaigns.core.db offers a ping to call.
    assert [f for f in found if not f.startswith("campaigns/web/app.py")] == []


def test_pages_and_api_do_not_know_the_providers() -> None:
    # Only the webhooks speak a provider's wire format (Vonage's parameters and signatures).
    found = [
        f"{name}: {module}"
        for name, tree in _web_modules()
        for module in _imported(tree)
        if module.split(".")[0] == "providers" and "/webhooks/" not in name
    ]
    assert not found


def test_one_error_answer_and_one_logger_style() -> None:
    shapes, loggers = [], []
    for name, tree in _web_modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name == "error_response":
                shapes.append(name)
            if isinstance(node, ast.Dict):
                keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
                # errors.py writes the shape, openapi.py describes it; nothing else spells it.
                if {"error", "detail"} <= keys and not name.endswith(("errors.py", "openapi.py")):
                    shapes.append(f"{name}:{node.lineno}")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "getLogger"
                and not (
                    len(node.args) == 1
                    and isinstance(node.args[0], ast.Name)
                    and node.args[0].id == "__name__"
                )
            ):
                loggers.append(f"{name}:{node.lineno}")
    assert shapes == ["campaigns/web/errors.py"]
    assert not loggers

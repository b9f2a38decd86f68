"""Shared by the staff page tests: logging in, CSRF tokens, posting forms, importing a file."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from aiohttp import FormData
from aiohttp.test_utils import TestClient

from campaigns.models import Person

PASSWORD = "mot-de-passe-solide"
DATA = Path(__file__).resolve().parent / "data"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


async def csrf(client: TestClient, path: str = "/connexion") -> str:
    html = await (await client.get(path)).text()
    match = CSRF_RE.search(html)
    assert match, f"{path} carries a CSRF token"
    return match.group(1)


async def login(client: TestClient, role: str) -> str:
    """Log in as `{role}@ccas.test`; returns the session's CSRF token."""
    token = await csrf(client)
    response = await client.post(
        "/connexion",
        data={"email": f"{role}@ccas.test", "password": PASSWORD, "csrf_token": token},
        allow_redirects=False,
    )
    assert response.status == 302, await response.text()
    return await csrf(client, "/")


async def post_form(client: TestClient, path: str, token: str, **fields: str):
    return await client.post(path, data={"csrf_token": token, **fields}, allow_redirects=False)


def assert_forms_carry_csrf(html: str) -> None:
    """Every POST form of the page carries the session's CSRF token."""
    forms = re.findall(r"<form[^>]*method=\"post\"[^>]*>(.*?)</form>", html, re.S | re.I)
    for form in forms:
        assert 'name="csrf_token"' in form, form[:200]


async def make_person(**values: object) -> Person:
    fields = {
        "last_name": "MARTIN",
        "first_name": "Jeanne",
        "identity_key": "martin|jeanne|",
        "mobile": "+33612345678",
        **values,
    }
    return await Person.create(**fields)


async def run_import(client: TestClient, token: str, path: Path, segment: str) -> str:
    form = FormData()
    form.add_field("csrf_token", token)
    form.add_field("segment", segment)
    data = await asyncio.to_thread(path.read_bytes)
    form.add_field("file", data, filename=path.name, content_type="text/csv")
    response = await client.post("/imports", data=form, allow_redirects=False)
    assert response.status == 303, await response.text()
    job_url = response.headers["Location"]
    for _ in range(200):
        state = await (await client.get(f"{job_url}/etat")).json()
        if state["state"] != "running":
            break
        await asyncio.sleep(0.05)
    assert state["state"] == "done", state
    return job_url

"""Templates over HTTP: checked on save, versioned on edit, previewed with their SMS cost."""

from __future__ import annotations

import pytest

from campaigns.messages.rendering import load_default_templates
from campaigns.models import AuditEvent, Person, Template, TemplateVersion

SMS = "{{ ccas.name }} : Bonjour {{ person.civility }} {{ person.last_name }}, appelez-nous."


async def test_create_then_edit_makes_versions(client, tokens) -> None:
    """Version 1 on create; a changed text is version 2; the same text again adds nothing."""
    headers = tokens.headers("coordinator")
    created = await client.post(
        "/api/v1/templates",
        json={"name": "Canicule", "channel": "sms", "body": SMS},
        headers=headers,
    )
    assert created.status == 201
    data = await created.json()
    assert (data["version"], data["body"], len(data["versions"])) == (1, SMS, 1)

    edited = await client.put(
        f"/api/v1/templates/{data['id']}",
        json={"body": SMS + " Merci.", "fold_accents": True},
        headers=headers,
    )
    assert edited.status == 200
    again = await client.put(
        f"/api/v1/templates/{data['id']}",
        json={"name": "Canicule 2025", "body": SMS + " Merci.", "fold_accents": True},
        headers=headers,
    )
    detail = await again.json()
    assert detail["name"] == "Canicule 2025"
    assert (detail["current_version"], detail["fold_accents"]) == (2, True)
    assert [v["version"] for v in detail["versions"]] == [2, 1]
    first = await TemplateVersion.get(template_id=data["id"], version=1)
    assert first.body == SMS  # what older campaigns point at is unchanged

    fetched = await client.get(f"/api/v1/templates/{data['id']}", headers=headers)
    assert (await fetched.json())["body"] == SMS + " Merci."


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        ("Bonjour {{ person.surnom }}", "undefined_variable", "variable inconnue"),
        ("Bonjour {{ prenom }}", "undefined_variable", "variable inconnue"),
        ("Bonjour {{ person.first_name ", "syntax", "erreur de syntaxe"),
    ],
)
async def test_unusable_template_is_422_with_french_detail(
    client, tokens, body: str, code: str, words: str
) -> None:
    headers = tokens.headers("admin")
    for path in ("/api/v1/templates", "/api/v1/templates/preview"):
        response = await client.post(
            path, json={"name": "x", "channel": "sms", "body": body}, headers=headers
        )
        assert response.status == 422, path
        error = await response.json()
        assert error["error"] == code
        assert words in error["detail"]
    assert not await Template.exists()


async def test_email_template_needs_a_subject(client, tokens) -> None:
    response = await client.post(
        "/api/v1/templates",
        json={"name": "Mail", "channel": "email", "body": "Bonjour"},
        headers=tokens.headers("coordinator"),
    )
    assert response.status == 422
    assert (await response.json())["error"] == "missing_subject"


PREVIEW_TABLE = [
    # (body, fold, encoding, ucs2 chars, normalised, folded)
    ("Venez « nous voir », {{ person.first_name }} !", False, "GSM-7", [], True, False),
    ("Une fête « conviviale », {{ person.first_name }}.", False, "UCS-2", ["ê"], True, False),
    ("Une fête « conviviale », {{ person.first_name }}.", True, "GSM-7", [], True, True),
]


@pytest.mark.parametrize(
    ("body", "fold", "encoding", "ucs2", "normalised", "folded"), PREVIEW_TABLE
)
async def test_preview_shows_encoding_and_transformations(
    client, tokens, body: str, fold: bool, encoding: str, ucs2: list, normalised: bool, folded: bool
) -> None:
    """« » are normalised away losslessly; ê forces UCS-2 unless the template folds accents."""
    response = await client.post(
        "/api/v1/templates/preview",
        json={"channel": "sms", "body": body, "fold_accents": fold},
        headers=tokens.headers("coordinator"),
    )
    assert response.status == 200
    data = await response.json()
    assert (data["encoding"], data["ucs2_chars"]) == (encoding, ucs2)
    assert (data["normalised"], data["folded"], data["segments"]) == (normalised, folded, 1)
    assert "Jeanne" in data["text"]  # the sample person
    assert data["parts"] == [data["text"]]
    assert data["units"] == len(data["text"])


async def test_preview_for_a_person_is_audited(client, tokens) -> None:
    person = await Person.create(
        civility="Monsieur", first_name="Paul", last_name="Vasseur", identity_key="vasseur"
    )
    response = await client.post(
        "/api/v1/templates/preview",
        json={"channel": "sms", "body": SMS, "person_id": person.id},
        headers=tokens.headers("coordinator"),
    )
    data = await response.json()
    assert data["text"] == "CCAS : Bonjour Monsieur Vasseur, appelez-nous."
    event = await AuditEvent.get(action="person.view")
    assert event.object_id == str(person.id) and event.actor_label == "coordinator@ccas.test"
    missing = await client.post(
        "/api/v1/templates/preview",
        json={"channel": "sms", "body": SMS, "person_id": person.id + 1},
        headers=tokens.headers("coordinator"),
    )
    assert missing.status == 404


async def test_email_preview_has_subject_html_and_unsubscribe_link(client, tokens) -> None:
    response = await client.post(
        "/api/v1/templates/preview",
        json={
            "channel": "email",
            "subject": "{{ ccas.name }} pense à vous",
            "body": "Bonjour {{ person.first_name }},\n\nAppelez-nous.",
        },
        headers=tokens.headers("coordinator"),
    )
    data = await response.json()
    assert data["subject"] == "CCAS pense à vous"
    assert "<p>Bonjour Jeanne,</p>" in data["html"]
    assert "/desabonnement/" in data["text"] and "/desabonnement/" in data["html"]


async def test_default_templates_are_seeded_once(client, tokens) -> None:
    """The list seeds the shipped French templates on first use, and never twice."""
    headers = tokens.headers("coordinator")
    first = await (await client.get("/api/v1/templates", headers=headers)).json()
    second = await (await client.get("/api/v1/templates", headers=headers)).json()
    defaults = load_default_templates()
    assert len(first["items"]) == len(second["items"]) == len(defaults)
    assert {t["name"] for t in first["items"]} == {d.name for d in defaults}
    assert await Template.all().count() == len(defaults)
    sms_only = await client.get("/api/v1/templates?channel=sms", headers=headers)
    assert {t["channel"] for t in (await sms_only.json())["items"]} == {"sms"}


async def test_caseworkers_cannot_touch_templates(client, tokens) -> None:
    headers = tokens.headers("caseworker")
    assert (await client.get("/api/v1/templates", headers=headers)).status == 403
    response = await client.post(
        "/api/v1/templates",
        json={"name": "x", "channel": "sms", "body": "Bonjour"},
        headers=headers,
    )
    assert response.status == 403
    assert (await client.get("/api/v1/templates")).status == 401

"""The Réponses page: every reply with its why, read marks, corrections; the model page."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp.test_utils import TestClient

from campaigns.models import Escalation, Reply
from tests.conftest import Tokens
from tests.pages_support import assert_forms_carry_csrf, login, make_person, post_form


async def _reply(text: str, label: str, **values: object) -> Reply:
    return await Reply.create(
        provider_message_id=f"page-{text}",
        msisdn="+33612345678",
        text=text,
        received_at=datetime.now(UTC),
        label=label,
        processed_at=datetime.now(UTC),
        explanation={"rules": ["merci_simple"], "probabilities": {label: 0.91, "other": 0.05}},
        **values,
    )


async def test_the_inbox_shows_every_reply_and_why(client: TestClient, tokens: Tokens) -> None:
    person = await make_person()
    await _reply("merci beaucoup", "thanks", person_id=person.id)
    await _reply("STOP", "opt_out", read_at=datetime.now(UTC), auto_archived=False)
    token = await login(client, "coordinator")
    html = await (await client.get("/reponses")).text()
    assert "merci beaucoup" in html and "STOP" in html
    assert "remerciement" in html and "désinscription" in html
    assert "merci_simple" in html and "91 %" in html
    assert "1</strong> non lue(s)" in html
    assert "Jeanne MARTIN" in html
    assert_forms_carry_csrf(html)
    filtered = await (await client.get("/reponses?etiquette=opt_out&lues=1")).text()
    assert "STOP" not in filtered  # read, so not among the unread
    assert token


async def test_marking_read_and_correcting(client: TestClient, tokens: Tokens) -> None:
    reply = await _reply("super, plus de chauffage depuis lundi", "thanks")
    token = await login(client, "coordinator")
    done = await post_form(client, "/reponses/lues", token, **{"ids[]": str(reply.id)})
    assert done.status == 303
    assert (await Reply.get(id=reply.id)).read_at is not None
    corrected = await post_form(client, f"/reponses/{reply.id}/etiquette", token, label="distress")
    assert corrected.status == 303 and corrected.headers["Location"] == "/reponses"
    refreshed = await Reply.get(id=reply.id)
    assert refreshed.label == "distress"
    assert (await Escalation.get(id=refreshed.escalation_id)).queue == "urgence"
    page = await (await client.get("/reponses")).text()
    assert "urgence" in page or "situation n°" in page


async def test_a_redirect_never_leaves_the_inbox(client: TestClient, tokens: Tokens) -> None:
    reply = await _reply("ok", "thanks")
    token = await login(client, "coordinator")
    response = await post_form(
        client, f"/reponses/{reply.id}/etiquette", token, label="thanks", suite="//evil.example"
    )
    assert response.headers["Location"] == "/reponses"


async def test_the_model_page_shows_cross_validated_figures(
    client: TestClient, tokens: Tokens
) -> None:
    await login(client, "admin")
    html = await (await client.get("/admin/modele")).text()
    assert "validation croisée" in html and "Justesse globale" in html
    assert "correction(s)" in html

"""Staff pages, server side: each page in French for the right role, forms with CSRF, the flows."""

from __future__ import annotations

import csv
import io
import re

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient

from campaigns.models import AuditEvent, OptOut, Person, Staff
from tests.pages_support import (
    DATA,
    assert_forms_carry_csrf,
    login,
    make_person,
    post_form,
    run_import,
)

PAGES = [
    ("coordinator", "/", "Tableau de bord"),
    ("coordinator", "/personnes", "Personnes"),
    ("coordinator", "/imports", "Importer un registre"),
    ("coordinator", "/publics", "Composer un public"),
    ("coordinator", "/modeles", "Modèles de message"),
    ("coordinator", "/modeles/nouveau", "Nouveau modèle SMS"),
    ("coordinator", "/campagnes", "Campagnes"),
    ("coordinator", "/campagnes/nouvelle", "Nouvelle campagne"),
    ("coordinator", "/files", "Files d&#39;attente"),
    ("coordinator", "/envoyes", "Envoyés"),
    ("caseworker", "/", "Tableau de bord"),
    ("caseworker", "/files", "Files d&#39;attente"),
    ("caseworker", "/files/urgence", "Prendre le suivant"),
    ("admin", "/journal", "Journal des accès"),
    ("admin", "/equipe", "Équipe"),
]


@pytest.mark.parametrize(("role", "path", "heading"), PAGES)
async def test_pages_in_french_with_csrf(client, tokens, role, path, heading) -> None:
    await login(client, role)
    response = await client.get(path)
    html = await response.text()
    assert response.status == 200
    assert '<html lang="fr">' in html
    assert re.search(r"<h1[^>]*>", html), "one main heading"
    assert heading in html
    assert_forms_carry_csrf(html)
    # Labels are bound to the inputs they name.
    for label_for in re.findall(r'<label for="([^"]+)"', html):
        assert f'id="{label_for}"' in html, label_for
    # CSP: no inline scripts, styles or handlers.
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert " style=" not in html and "onclick=" not in html


async def test_person_page_is_audited_and_shows_history(client, tokens) -> None:
    person = await make_person()
    await login(client, "coordinator")
    listing = await (await client.get("/personnes?q=martin")).text()
    assert f'href="/personnes/{person.id}"' in listing
    html = await (await client.get(f"/personnes/{person.id}")).text()
    assert "Messages reçus" in html and "Réponses" in html and "Segments" in html
    staff = await Staff.get(email="coordinator@ccas.test")
    assert await AuditEvent.filter(
        action="person.view", object_id=str(person.id), actor_id=staff.id
    ).exists()
    # The page lists the audit of that person, as sentences.
    assert "coordinator@ccas.test a consulté la fiche de Jeanne Martin." in html
    assert "person.view" not in html


async def test_person_edit_rejects_bad_phone_and_saves_good_values(client, tokens) -> None:
    person = await make_person()
    token = await login(client, "coordinator")
    form = await (await client.get(f"/personnes/{person.id}/modifier")).text()
    assert_forms_carry_csrf(form)
    bad = await post_form(
        client, f"/personnes/{person.id}/modifier", token, last_name="MARTIN", mobile="12"
    )
    assert bad.status == 200
    assert "invalide" in await bad.text()
    good = await post_form(
        client,
        f"/personnes/{person.id}/modifier",
        token,
        last_name="MARTIN",
        first_name="Jeanne",
        mobile="06 12 34 56 79",
        district="Centre-ville",
        preferred_channel="sms",
    )
    assert good.status == 303
    await person.refresh_from_db()
    assert person.mobile == "+33612345679"
    assert person.district == "Centre-ville"


async def test_erase_needs_confirmation_and_keeps_the_opt_out(client, tokens) -> None:
    person = await make_person()
    await OptOut.create(address=person.mobile, channel="sms", source="reply")
    token = await login(client, "coordinator")
    confirm = await (await client.get(f"/personnes/{person.id}/effacer")).text()
    assert "oppositions (STOP)" in confirm
    assert_forms_carry_csrf(confirm)
    unconfirmed = await post_form(client, f"/personnes/{person.id}/effacer", token)
    assert unconfirmed.status == 303
    assert await Person.exists(id=person.id)
    erased = await post_form(client, f"/personnes/{person.id}/effacer", token, confirmer="oui")
    assert erased.status == 303
    assert not await Person.exists(id=person.id)
    assert await OptOut.exists(address="+33612345678", active=True)
    assert "restent enregistrées" in await (await client.get("/personnes")).text()


async def test_import_runs_in_background_and_report_downloads_as_csv(client, tokens) -> None:
    token = await login(client, "coordinator")
    job_url = await run_import(client, token, DATA / "registre_domicilies.csv", "domicilies")
    html = await (await client.get(job_url)).text()
    assert "Bilan" in html and "Lignes rejetées" in html
    created = int(re.search(r'data-report="created" data-value="(\d+)"', html).group(1))
    assert created == await Person.all().count() > 900
    response = await client.get(f"{job_url}/rapport.csv")
    assert response.status == 200
    assert "attachment" in response.headers["Content-Disposition"]
    body = (await response.read()).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(body), delimiter=";"))
    assert rows[0] == ["type", "ligne", "motif", "détail", "code"]
    rejected = [r for r in rows[1:] if r[0] == "rejet"]
    rejected_count = int(re.search(r'data-report="rejected" data-value="(\d+)"', html).group(1))
    assert len(rejected) == rejected_count
    assert all(r[1].isdigit() and int(r[1]) >= 2 for r in rows[1:])
    imports_page = await (await client.get("/imports")).text()
    assert "domicilies" in imports_page  # the audited import is listed


async def test_import_with_bad_segment_says_why(client, tokens) -> None:
    token = await login(client, "coordinator")
    form = FormData()
    form.add_field("csrf_token", token)
    form.add_field("segment", "Pas Un Code")
    form.add_field("file", b"Nom\nDUPONT\n", filename="x.csv", content_type="text/csv")
    response = await client.post("/imports", data=form)
    assert response.status == 200
    assert "Segment invalide" in await response.text()


async def test_audience_builder_saves_and_counts(client, tokens) -> None:
    await make_person(district="Centre-ville")
    await make_person(last_name="DURAND", identity_key="durand|jeanne|", mobile=None)
    token = await login(client, "coordinator")
    html = await (await client.get("/publics")).text()
    assert "Composer un public" in html and "Centre-ville" in html
    assert_forms_carry_csrf(html)
    live = await client.post(
        "/api/v1/audiences/count",
        json={"filter": {"channel": "sms"}},
        headers={"X-CSRF-Token": token},
    )
    assert (await live.json())["count"] == 1
    response = await client.post(
        "/publics",
        data={"csrf_token": token, "name": "Joignables SMS", "channel": "sms"},
        allow_redirects=False,
    )
    assert response.status == 303
    page = await (await client.get(response.headers["Location"])).text()
    assert "Joignables SMS" in page and "MARTIN" in page and "DURAND" not in page
    refused = await post_form(client, "/publics", token, name="Âges", age_min="90", age_max="60")
    assert refused.status == 200
    assert "Filtre invalide" in await refused.text()


async def test_template_editor_previews_ucs2_and_saves_versions(client, tokens) -> None:
    token = await login(client, "coordinator")
    listing = await (await client.get("/modeles")).text()
    assert "Modèles de message" in listing
    created = await post_form(
        client,
        "/modeles",
        token,
        name="Essai",
        channel="sms",
        body="Bonjour {{ person.first_name }} ê",
    )
    assert created.status == 303
    editor = await (await client.get(created.headers["Location"])).text()
    assert_forms_carry_csrf(editor)
    assert '<mark class="ucs2">ê</mark>' in editor
    assert "UCS-2" in editor
    broken = await post_form(
        client, created.headers["Location"], token, name="Essai", body="{{ person.inconnu }}"
    )
    assert broken.status == 200
    assert 'role="alert"' in await broken.text()
    saved = await post_form(
        client, created.headers["Location"], token, name="Essai", body="Bonjour"
    )
    assert saved.status == 303
    assert "Version 2" in await (await client.get(created.headers["Location"])).text()


async def _campaign(client: TestClient, token: str) -> str:
    """A draft SMS campaign to an audience of two people (one reachable), via the pages."""
    await make_person()
    await make_person(last_name="FIXE", identity_key="fixe||", mobile=None, landline="+33145678910")
    audience = await post_form(client, "/publics", token, name="Tous")
    audience_id = audience.headers["Location"].rsplit("/", 1)[1]
    template = await post_form(
        client, "/modeles", token, name="Invitation", channel="sms", body="Bonjour, appelez-nous."
    )
    template_id = template.headers["Location"].rsplit("/", 1)[1]
    new = await (await client.get(f"/campagnes/nouvelle?public={audience_id}")).text()
    assert "Nouvelle campagne" in new
    assert_forms_carry_csrf(new)
    created = await post_form(
        client,
        "/campagnes",
        token,
        name="Canicule",
        template_id=template_id,
        audience_id=audience_id,
        sender="+33612000000",
        expects_replies="oui",
    )
    assert created.status == 303, await created.text()
    return created.headers["Location"].removesuffix("/lancement")


async def test_campaign_confirmation_launch_pause_cancel(client, tokens) -> None:
    token = await login(client, "coordinator")
    campaign_url = await _campaign(client, token)
    confirm = await (await client.get(f"{campaign_url}/lancement")).text()
    assert "Confirmer le lancement" in confirm
    assert 'data-plan="recipients" data-value="1"><strong>1</strong>' in confirm
    assert "uniquement un téléphone fixe" in confirm  # skipped, with its reason
    assert "Coût estimé" in confirm
    assert_forms_carry_csrf(confirm)
    unconfirmed = await post_form(client, f"{campaign_url}/lancer", token)
    assert unconfirmed.headers["Location"].endswith("/lancement")
    launched = await post_form(client, f"{campaign_url}/lancer", token, confirmer="oui")
    assert launched.headers["Location"] == campaign_url
    page = await (await client.get(campaign_url)).text()
    assert "Campagne lancée." in page
    assert '<svg class="funnel"' in page and "Mis en file" in page
    assert_forms_carry_csrf(page)
    state = await (await client.get(f"{campaign_url}/etat")).json()
    assert state["funnel"]["queued"] == 1
    assert state["status"] == "running" and 0 <= state["progress_percent"] <= 100
    await post_form(client, f"{campaign_url}/pause", token)
    assert (await (await client.get(f"{campaign_url}/etat")).json())["status"] == "paused"
    await post_form(client, f"{campaign_url}/annuler", token)
    state = await (await client.get(f"{campaign_url}/etat")).json()
    assert state["status"] == "cancelled" and state["progress_percent"] == 100
    listing = await (await client.get("/campagnes")).text()
    assert "Canicule" in listing and "annulée" in listing


async def test_journal_filters_and_is_admin_only(client, tokens) -> None:
    person = await make_person()
    await login(client, "coordinator")
    await client.get(f"/personnes/{person.id}")
    assert (await client.get("/journal")).status == 403
    await login(client, "admin")
    html = await (await client.get("/journal?action=person.view")).text()
    assert "Journal des accès" in html
    assert "coordinator@ccas.test" in html
    assert "auth.login" not in html.split("<tbody>")[1]
    by_object = await (await client.get(f"/journal?objet=person&id={person.id}")).text()
    assert "a consulté la fiche de Jeanne Martin" in by_object.split("<tbody>")[1]
    nothing = await (await client.get("/journal?du=2000-01-01&au=2000-01-02")).text()
    assert "0 événement(s)" in nothing


async def test_team_creation_shows_the_password_once(client, tokens) -> None:
    token = await login(client, "admin")
    html = await (await client.get("/equipe")).text()
    assert "Créer un compte" in html
    assert_forms_carry_csrf(html)
    response = await post_form(
        client,
        "/equipe",
        token,
        email="nouvelle@ccas.test",
        name="Nouvelle",
        role="caseworker",
        queues_given="1",
        **{"queues[]": "rappel"},
    )
    assert response.status == 303
    first = await (await client.get("/equipe")).text()
    password = re.search(r"data-one-time-password>([^<]+)<", first).group(1)
    assert len(password) >= 12
    again = await (await client.get("/equipe")).text()
    assert password not in again
    member = await Staff.get(email="nouvelle@ccas.test")
    assert member.queues == ["rappel"] and member.must_change_password
    await post_form(client, f"/equipe/{member.id}/activation", token)
    await member.refresh_from_db()
    assert not member.active
    duplicate = await post_form(client, "/equipe", token, email="nouvelle@ccas.test", role="admin")
    assert "existe déjà" in await duplicate.text()


async def test_outbox_lists_console_messages(client, tokens, runtime) -> None:
    from providers.base import SmsRequest

    await runtime.sms.send_sms(
        SmsRequest(
            message_id="m1", to="+33612345678", sender="CCAS", text="Bonjour test", unicode=False
        )
    )
    await login(client, "coordinator")
    html = await (await client.get("/envoyes")).text()
    assert "Envoyés" in html and "Bonjour test" in html

"""Call pages, server side: a volunteer's calls and sheet (and nothing else), outcomes with
their French confirmations, and the coordinators' coverage page with its callers form."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient

from campaigns.campaign.lifecycle import create_campaign
from campaigns.core.runtime import Runtime
from campaigns.messages.template_store import TemplateContent, create_template
from campaigns.models import AuditEvent, CallStatus, CallTask, Campaign, Escalation, Person, Staff
from campaigns.registry.audiences import create_audience
from campaigns.web.pages.calls import when_fr
from tests.call_support import ADMIN, MONDAY, Clock, call_campaign, fragile_register
from tests.pages_support import assert_forms_carry_csrf, login, post_form

PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture
def clock(runtime: Runtime) -> Clock:
    clock = Clock()
    runtime.clock = clock
    return clock


async def _campaign(runtime: Runtime, size: int = 3) -> tuple[Campaign, list[Person]]:
    people = await fragile_register(size)
    campaign, _ = await call_campaign(
        runtime, callers=["benevole@ccas.test", "caseworker@ccas.test"]
    )
    return campaign, people


async def _take(client: TestClient, token: str) -> int:
    response = await post_form(client, "/appels/suivant", token)
    assert response.status == 303
    location = response.headers["Location"]
    assert re.fullmatch(r"/appels/\d+", location), location
    return int(location.rsplit("/", 1)[1])


async def _record(client: TestClient, token: str, task_id: int, **fields: str) -> str:
    """Post an outcome; returns the /appels page shown after it (with its confirmation)."""
    response = await post_form(client, f"/appels/{task_id}/issue", token, **fields)
    assert response.status == 303
    assert response.headers["Location"] == "/appels"
    return unescape(await (await client.get("/appels")).text())


def _check_page(page: str) -> None:
    assert '<html lang="fr">' in page
    assert_forms_carry_csrf(page)
    for label_for in re.findall(r'<label for="([^"]+)"', page):
        assert f'id="{label_for}"' in page, label_for
    assert not re.search(r"<script(?![^>]*\bsrc=)", page)
    assert " style=" not in page and "onclick=" not in page


async def test_volunteer_lands_on_calls_and_sees_only_calls(client, tokens, runtime, clock) -> None:
    await _campaign(runtime)
    token = await login(client, "benevole")
    landing = await client.get("/", allow_redirects=False)
    assert (landing.status, landing.headers["Location"]) == (302, "/appels")
    html = await (await client.get("/appels")).text()
    _check_page(html)
    assert "Prendre l'appel suivant" in html
    assert 'data-pool-due="3"' in html
    nav = re.search(r'<nav aria-label="Navigation principale">(.*?)</nav>', html, re.S)
    assert nav is not None
    assert re.findall(r'href="([^"]+)"', nav.group(1)) == ["/appels"]
    assert 'href="/mot-de-passe"' in html and 'action="/deconnexion"' in html
    person = await Person.first()
    assert person is not None
    for path in ("/personnes", "/reponses", "/files", f"/personnes/{person.id}", "/campagnes"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 403, path
        assert "Accès refusé" in await response.text()
    assert (await client.get("/mot-de-passe")).status == 200
    assert token


async def test_sheet_shows_a_volunteer_no_birth_date_address_or_segment(
    client, tokens, runtime, clock
) -> None:
    _, people = await _campaign(runtime)
    token = await login(client, "benevole")
    task_id = await _take(client, token)
    task = await CallTask.get(id=task_id)
    person = next(p for p in people if p.id == task.person_id)
    html = await (await client.get(f"/appels/{task_id}")).text()
    _check_page(html)
    assert f"{person.first_name} {person.last_name}" in html
    for number in (person.mobile, person.landline):
        if number:
            assert f'href="tel:{number}"' in html
    # The script rendered for this person, not the template.
    assert f"{person.last_name}, ici le" in html and "{{" not in html
    assert "01/01/1940" not in html and "1940" not in html
    assert "rue des Lilas" not in html and person.address not in html
    for segment in ("registre_fragiles", "Registre des personnes fragiles", "Segments"):
        assert segment not in html
    assert "Fille" not in html  # the emergency contact is the coordinators' to use
    assert "Reposer l'appel" in html and "Enregistrer l'issue" in html
    assert await AuditEvent.filter(action="call.claim", object_id=str(task_id)).exists()
    views = await AuditEvent.filter(action="call.view", object_id=str(task_id)).count()
    assert views == 1  # every view of the sheet is kept: this one


async def test_reached_with_a_need_then_no_answer_comes_back(
    client, tokens, runtime, clock
) -> None:
    await _campaign(runtime)
    token = await login(client, "benevole")
    first = await _take(client, token)
    page = await _record(
        client, token, first, outcome="joint_besoin", besoin="portage_repas", note="Seule."
    )
    assert "besoin orienté vers « Portage de repas »" in page
    done = await CallTask.get(id=first)
    assert (done.status, done.orientation) == (CallStatus.DONE, "portage_repas")

    second = await _take(client, token)
    assert second != first
    page = await _record(client, token, second, outcome="pas_de_reponse", besoin="courses")
    retry = await CallTask.get(id=second)
    assert retry.status == CallStatus.RETRY and retry.orientation is None
    expected = when_fr(retry.due_at, clock.now, PARIS)
    assert f"Rappel prévu {expected}." in page
    assert re.search(r"Rappel prévu [^.]* à \d{1,2} h \d{2}\.", page)
    assert 'data-calls="later"' in page

    # The third person now; then, once its time has come, the retry is taken again.
    third = await _take(client, token)
    await _record(client, token, third, outcome="joint_rien")
    response = await post_form(client, "/appels/suivant", token)
    assert response.headers["Location"] == "/appels"
    assert "Aucun appel à prendre pour le moment." in await (await client.get("/appels")).text()
    clock.now = retry.due_at + timedelta(minutes=1)
    assert await _take(client, token) == second
    sheet = await (await client.get(f"/appels/{second}")).text()
    assert "Pas de réponse" in sheet and "tentative 2 sur 3" in sheet


async def test_need_opened_in_a_queue_and_form_errors(client, tokens, runtime, clock) -> None:
    await _campaign(runtime)
    token = await login(client, "benevole")
    task_id = await _take(client, token)
    # A need without its orientation: said in French, back to the sheet, nothing recorded.
    response = await post_form(client, f"/appels/{task_id}/issue", token, outcome="joint_besoin")
    assert response.headers["Location"] == f"/appels/{task_id}"
    sheet = await (await client.get(f"/appels/{task_id}")).text()
    assert "choisissez" in sheet and 'class="error"' in sheet
    assert (await CallTask.get(id=task_id)).status == CallStatus.CLAIMED
    page = await _record(client, token, task_id, outcome="joint_besoin", besoin="file:urgence")
    assert "une situation est ouverte dans la file « Urgence »" in page
    task = await CallTask.get(id=task_id)
    assert await Escalation.filter(id=task.escalation_id, queue="urgence").exists()


async def test_release_and_someone_elses_call(client, tokens, runtime, clock) -> None:
    await _campaign(runtime)
    token = await login(client, "benevole")
    task_id = await _take(client, token)
    response = await post_form(client, f"/appels/{task_id}/reposer", token)
    assert response.headers["Location"] == "/appels"
    assert "Appel reposé" in await (await client.get("/appels")).text()
    volunteer = await Staff.get(email="benevole@ccas.test")
    task = await CallTask.get(id=task_id)
    assert (task.status, task.assignee_id) == (CallStatus.TODO, volunteer.id)
    # The call is the volunteer's now: a caseworker of the campaign does not see it.
    await client.post("/deconnexion", data={"csrf_token": token})
    await login(client, "caseworker")
    assert (await client.get(f"/appels/{task_id}")).status == 404
    assert (await client.get("/appels/2147483647")).status == 404
    assert (await client.get("/appels/abc")).status == 404


async def test_coverage_page_and_callers_form(client, tokens, runtime, clock) -> None:
    campaign, _ = await _campaign(runtime, size=4)
    token = await login(client, "coordinator")
    html = await (await client.get(f"/campagnes/{campaign.id}")).text()
    assert f'href="/campagnes/{campaign.id}/couverture"' in html
    response = await client.get(f"/campagnes/{campaign.id}/couverture")
    assert response.status == 200
    html = await response.text()
    _check_page(html)
    assert "Couverture" in html and 'data-coverage="eligible">4<' in html
    assert "Nord" in html and "Sud" in html  # by district
    assert "benevole@ccas.test" in html and "bénévole" in html
    assert await AuditEvent.filter(action="campaign.coverage").exists()

    response = await post_form(
        client, f"/campagnes/{campaign.id}/appelants", token, emails="inconnu@ccas.test"
    )
    assert response.headers["Location"] == f"/campagnes/{campaign.id}/couverture"
    html = await (await client.get(f"/campagnes/{campaign.id}/couverture")).text()
    assert "Compte inconnu" in html and "inconnu@ccas.test" in html
    await post_form(
        client,
        f"/campagnes/{campaign.id}/appelants",
        token,
        emails="admin@ccas.test;\nbenevole@ccas.test ",
    )
    html = await (await client.get(f"/campagnes/{campaign.id}/couverture")).text()
    assert "Appelant·es enregistré·es : 2." in html
    callers = re.search(r"<ul data-callers>(.*?)</ul>", html, re.S)
    assert callers is not None and "caseworker@ccas.test" not in callers.group(1)


async def test_coverage_of_an_sms_campaign_says_why_not(client, tokens, runtime) -> None:
    template = await create_template("SMS", "sms", TemplateContent("Bonjour"), actor=ADMIN)
    audience, _ = await create_audience("Tous", {}, actor=ADMIN)
    campaign = await create_campaign(
        name="Pas d'appels",
        channel="sms",
        template_id=template.id,
        audience_id=audience.id,
        actor=ADMIN,
        settings=runtime.settings,
        now=runtime.clock(),
        sender="+33612000000",
    )
    await login(client, "coordinator")
    path = f"/campagnes/{campaign.id}"
    response = await client.get(f"{path}/couverture", allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (303, path)
    html = await (await client.get(path)).text()
    assert "pas une campagne d&#39;appels" in html and "/couverture" not in html
    assert (await client.get("/campagnes/999999/couverture")).status == 404


def test_when_fr_says_the_day_and_the_time() -> None:
    now = MONDAY  # 09:00 in Paris
    assert when_fr(now + timedelta(hours=5), now, PARIS) == "aujourd'hui à 14 h 00"
    tuesday = datetime(2026, 3, 3, 13, 0, tzinfo=UTC)
    assert when_fr(tuesday, now, PARIS) == "mardi à 14 h 00"
    later = datetime(2026, 3, 16, 8, 30, tzinfo=UTC)
    assert when_fr(later, now, PARIS) == "lundi 16 mars à 9 h 30"

"""A volunteer in a real Chromium: two calls, one reached with a need oriented to meal
delivery, one with no answer that comes back once its time has come."""

from __future__ import annotations

import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from campaigns.models import CallStatus, CallTask
from tests.browser import PASSWORD, launch, live_app, login, require_chromium, screenshot
from tests.call_support import Clock, call_campaign, fragile_register

pytestmark = pytest.mark.browser


async def test_volunteer_takes_two_calls_in_chromium(sqlite_template: Path, tmp_path: Path) -> None:
    require_chromium()
    from playwright.async_api import async_playwright, expect

    database = tmp_path / "browser-calls.db"
    shutil.copy(sqlite_template, database)
    clock = Clock()
    async with (
        live_app(f"sqlite://{database}", tmp_path, clock=clock) as app,
        async_playwright() as pw,
    ):
        people = await fragile_register(2)
        campaign, _ = await call_campaign(app.runtime, callers=["benevole@ccas.test"])
        browser = await launch(pw)
        # A volunteer's phone: calls are made from a small screen.
        context = await browser.new_context(viewport={"width": 390, "height": 844})
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        base = app.base_url

        # 1. Log in: a volunteer lands on their calls, and the menu offers nothing else.
        await page.goto(f"{base}/connexion")
        await page.fill("#email", "benevole@ccas.test")
        await page.fill("#password", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{base}/appels")
        await expect(page.locator("h1")).to_have_text("Appels")
        await expect(page.locator(".topbar nav a")).to_have_count(1)
        await expect(page.locator(".topbar nav a")).to_have_text("Appels")
        await screenshot(page, "appels-01-liste")

        # 2. The first call: the sheet, its numbers as tel: links, no register data.
        await page.click('button:has-text("Prendre l\'appel suivant")')
        await page.wait_for_url(re.compile(r"/appels/\d+$"))
        first_id = int(page.url.rsplit("/", 1)[1])
        first = await CallTask.get(id=first_id)
        person = next(p for p in people if p.id == first.person_id)
        await expect(page.locator("[data-person-name]")).to_have_text(
            f"{person.first_name} {person.last_name}"
        )
        number = person.mobile or person.landline
        await expect(page.locator(f'a[href="tel:{number}"]')).to_be_visible()
        await expect(page.locator("[data-script]")).to_contain_text("CCAS de Villeurbanne")
        main = await page.text_content("main") or ""
        assert "1940" not in main and "rue des Lilas" not in main and "Fille" not in main
        await screenshot(page, "appels-02-fiche")

        # 3. Reached, with a need: oriented to meal delivery.
        await page.check("#outcome-joint_besoin")
        await page.select_option("#besoin", "portage_repas")
        await page.fill("#call-note", "Ne peut plus faire ses courses, repas à livrer.")
        await page.click('button:has-text("Enregistrer l\'issue")')
        await page.wait_for_url(f"{base}/appels")
        await expect(page.locator("main [role=status]")).to_contain_text(
            "besoin orienté vers « Portage de repas »"
        )
        done = await CallTask.get(id=first_id)
        assert (done.status, done.orientation) == (CallStatus.DONE, "portage_repas")
        await screenshot(page, "appels-03-oriente")

        # 4. The next call: no answer. It is planned for later, and said so.
        await page.click('button:has-text("Prendre l\'appel suivant")')
        await page.wait_for_url(re.compile(r"/appels/\d+$"))
        second_id = int(page.url.rsplit("/", 1)[1])
        assert second_id != first_id
        await page.check("#outcome-pas_de_reponse")
        await page.click('button:has-text("Enregistrer l\'issue")')
        await page.wait_for_url(f"{base}/appels")
        await expect(page.locator("main [role=status]")).to_contain_text(
            re.compile(r"Rappel prévu .+ à \d{1,2} h \d{2}\.")
        )
        await expect(page.locator("[data-calls=later] li")).to_have_count(1)
        retry = await CallTask.get(id=second_id)
        assert retry.status == CallStatus.RETRY and retry.due_at > clock.now
        await screenshot(page, "appels-04-rappel-prevu")

        # 5. Nothing to take before its time; once it has come, the same call comes back.
        await page.click('button:has-text("Prendre l\'appel suivant")')
        await expect(page.locator("main [role=status]")).to_have_text(
            "Aucun appel à prendre pour le moment."
        )
        clock.now = retry.due_at + timedelta(minutes=1)
        await page.click('button:has-text("Prendre l\'appel suivant")')
        await page.wait_for_url(f"{base}/appels/{second_id}")
        await expect(page.locator("[data-last-contact]")).to_contain_text("Pas de réponse")
        await expect(page.locator(".notes")).to_contain_text("Pas de réponse")
        await screenshot(page, "appels-05-rappel")

        # 6. Nothing else is open to a volunteer.
        for path in ("/personnes", "/reponses", "/files", "/campagnes"):
            response = await page.goto(f"{base}{path}")
            assert response is not None and response.status == 403, path

        # 7. The coordinator's side: coverage of the cycle, reached from the campaign page.
        office = await browser.new_context(viewport={"width": 1280, "height": 900})
        desk = await office.new_page()
        desk.on("pageerror", lambda exc: errors.append(str(exc)))
        await login(desk, base, "coordinator@ccas.test")
        await desk.goto(f"{base}/campagnes/{campaign.id}")
        await desk.click("a:has-text('Couverture et appelant·es')")
        await desk.wait_for_url(f"{base}/campagnes/{campaign.id}/couverture")
        await expect(desk.locator("[data-coverage=reached]")).to_contain_text("1 (50 %)")
        await expect(desk.locator("[data-callers]")).to_contain_text("benevole@ccas.test")
        await screenshot(desk, "appels-06-couverture")
        await browser.close()
        assert not errors, errors

"""In a real Chromium: the launch confirmation shows the message rendered for real recipients,
and a campaign launched on a Sunday evening says when its send window opens."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from campaigns.models import Message, MessageStatus, Person
from tests.browser import launch, live_app, login, require_chromium, screenshot

pytestmark = pytest.mark.browser

# Sunday 29 November 2026, 20:00 in Paris: "mon-sat 09:00-19:00" is shut until Monday 09:00.
SUNDAY_EVENING = datetime(2026, 11, 29, 19, 0, tzinfo=UTC)
GREETING = (
    "{{ ccas.name }} : Bonjour {{ person.civility or person.first_name | title }} "
    "{{ person.last_name | title }}, comment allez-vous ? Appelez-nous au {{ ccas.hotline }}, "
    "{{ ccas.hours }}. Vous pouvez aussi répondre à ce SMS."
)
PEOPLE = [
    ("Madame", "Paulette", "ANDRE", "+33611000001"),
    (None, "NOËLLE", "BERNARD", "+33611000002"),
    ("Monsieur", "Jérôme", "DURAND", "+33611000003"),
    (None, "Lucie", "FAURE", "+33611000004"),
]


async def test_confirmation_and_closed_window_in_chromium(
    sqlite_template: Path, tmp_path: Path
) -> None:
    require_chromium()
    from playwright.async_api import async_playwright, expect

    database = tmp_path / "browser.db"
    shutil.copy(sqlite_template, database)
    async with (
        live_app(
            f"sqlite://{database}",
            tmp_path,
            clock=lambda: SUNDAY_EVENING,
            CAMPAIGNS_SEND_WINDOW="mon-sat 09:00-19:00",
        ) as app,
        async_playwright() as pw,
    ):
        for civility, first, last, mobile in PEOPLE:
            await Person.create(
                civility=civility,
                first_name=first,
                last_name=last,
                identity_key=f"{last.lower()}|{first.lower()}|",
                mobile=mobile,
            )
        browser = await launch(pw)
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        base = app.base_url
        await login(page, base, "coordinator@ccas.test")

        await page.goto(f"{base}/publics")
        await page.fill("#name", "Tout le monde")
        await page.click("button:has-text('Enregistrer le public')")
        await page.wait_for_url(re.compile(r"/publics/\d+$"))
        audience_id = page.url.rsplit("/", 1)[1]
        await page.goto(f"{base}/modeles/nouveau")
        await page.fill("#name", "Prendre des nouvelles")
        await page.fill("#body", GREETING)
        await expect(page.locator("#preview-chars")).to_have_text(re.compile(r"^\d+$"))
        await page.click("button:has-text('Enregistrer')")
        await page.wait_for_url(re.compile(r"/modeles/\d+$"))
        template_id = page.url.rsplit("/", 1)[1]

        await page.goto(f"{base}/campagnes/nouvelle?public={audience_id}&modele={template_id}")
        await page.fill("#name", "Nouvelles du dimanche")
        await page.fill("#sender", "33644630000")
        await page.click("button:has-text('Continuer')")
        await page.wait_for_url(re.compile(r"/campagnes/\d+/lancement$"))
        texts = await page.locator("[data-sample-text]").all_text_contents()
        assert [t.split(",")[0] for t in texts] == [
            "CCAS de Villeurbanne : Bonjour Madame Andre",
            "CCAS de Villeurbanne : Bonjour Noëlle Bernard",
            "CCAS de Villeurbanne : Bonjour Monsieur Durand",
        ]
        assert all("04 72 00 00 00" in t and "{{" not in t for t in texts)
        encodings = await page.locator("[data-sample-encoding]").all_text_contents()
        assert any("GSM-7 : 160 caractères par SMS" in e for e in encodings)
        assert any("UCS-2 (accents ou emoji hors alphabet SMS)" in e for e in encodings)
        await expect(page.locator("[data-sample-parts]").first).to_have_text("2")
        await expect(page.locator("[data-plan=cost]")).to_contain_text(",")
        await screenshot(page, "13-confirmation-message-rendu")

        await page.check("#confirmer")
        await page.click("button:has-text('Lancer la campagne')")
        await page.wait_for_url(re.compile(r"/campagnes/\d+$"))
        campaign_id = int(page.url.rsplit("/", 1)[1])
        reason = page.locator(f"[data-reason-campaign='{campaign_id}']")
        await expect(reason).to_have_text(
            "— fenêtre d'envoi fermée : envoi à partir de demain à 09:00"
        )
        await expect(page.locator("[data-figure=parts_sent]")).to_have_text("0")
        await screenshot(page, "14-campagne-fenetre-fermee")
        queued = await Message.filter(campaign_id=campaign_id, status=MessageStatus.QUEUED).count()
        assert queued == len(PEOPLE)  # nothing left on a Sunday evening

        await page.goto(base)
        await expect(page.locator(f"[data-reason-campaign='{campaign_id}']")).to_contain_text(
            "envoi à partir de demain à 09:00"
        )
        await screenshot(page, "15-tableau-de-bord-fenetre-fermee")
        await browser.close()
        assert not errors, errors

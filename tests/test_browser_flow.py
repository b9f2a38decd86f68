"""The whole flow in a real Chromium: import, audience, template, campaign to the Vonage
emulator watched to 100 %, a distress reply, and a caseworker who takes it, notes, resolves."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from campaigns.models import Escalation, EscalationStatus, Message
from providers.vonage.signatures import sign_params
from tests.browser import (
    DATA,
    SIGNATURE_SECRET,
    launch,
    live_app,
    login,
    require_chromium,
    screenshot,
)

pytestmark = pytest.mark.browser


async def _wait_for(predicate, seconds: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def test_whole_flow_in_chromium(sqlite_template: Path, tmp_path: Path) -> None:
    require_chromium()
    from playwright.async_api import async_playwright, expect

    started = time.monotonic()
    database = tmp_path / "browser.db"
    shutil.copy(sqlite_template, database)
    register = DATA / "registre_domicilies.csv"
    async with live_app(f"sqlite://{database}", tmp_path) as app, async_playwright() as pw:
        browser = await launch(pw)
        coordinator = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await coordinator.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        base = app.base_url

        # 1. Log in as a coordinator.
        await login(page, base, "coordinator@ccas.test")
        await screenshot(page, "01-tableau-de-bord")

        # 2. Import the register of domiciled people and read the report.
        await page.goto(f"{base}/imports")
        await page.set_input_files("#file", str(register))
        await page.select_option("#segment", "domicilies")
        await page.click("button:has-text('Importer')")
        await page.wait_for_selector("h2:has-text('Bilan')", timeout=30_000)
        created = int(await page.get_attribute("[data-report=created]", "data-value") or "0")
        assert created > 900
        await expect(page.locator("a:has-text('Télécharger le rapport')")).to_be_visible()
        await screenshot(page, "02-import-rapport")

        await page.goto(f"{base}/personnes?segment=domicilies")
        await expect(page.locator("h1")).to_have_text("Personnes")
        await screenshot(page, "03-personnes")

        # 3. Build an audience with its live count, and save it.
        await page.goto(f"{base}/publics")
        await page.fill("#name", "Domiciliés joignables par SMS")
        await page.check("#segments_any-domicilies")
        # The count asked for the whole filter (the channel is chosen last) is the one shown,
        # whatever the order in which earlier counts come back.
        async with page.expect_response(
            lambda r: (
                r.url.endswith("/api/v1/audiences/count")
                and '"channel"' in (r.request.post_data or "")
            )
        ) as answer:
            await page.select_option("#channel", "sms")
        final = (await (await answer.value).json())["count"]
        assert final > 0
        digits = r"\s?".join(str(final))
        await expect(page.locator("#audience-count")).to_have_text(re.compile(f"^{digits}$"))
        live_text = await page.text_content("#audience-count") or "0"
        await screenshot(page, "04-publics")
        await page.click("button:has-text('Enregistrer le public')")
        await page.wait_for_url(re.compile(r"/publics/\d+$"))
        audience_id = page.url.rsplit("/", 1)[1]
        assert f"{live_text} personne(s)" in (await page.text_content("main") or "")

        # 4. Write a template and see its parts, with the UCS-2 character highlighted.
        await page.goto(f"{base}/modeles/nouveau")
        await page.fill("#name", "Invitation domiciliés")
        await page.fill(
            "#body",
            "Bonjour {{ person.first_name }}, le {{ ccas.name }} prend de vos nouvelles. "
            "Appelez le {{ ccas.hotline }} ou répondez à ce SMS. Bonne fête !",
        )
        await expect(page.locator("#preview-segments")).to_have_text(re.compile(r"^[1-9]$"))
        await expect(page.locator("#preview-encoding")).to_have_text("UCS-2")
        await expect(page.locator("#preview-text mark.ucs2").first).to_have_text("ê")
        assert await page.locator("#preview-parts li").count() >= 1
        await screenshot(page, "05-modele-apercu")
        await page.click("button:has-text('Enregistrer')")
        await page.wait_for_url(re.compile(r"/modeles/\d+$"))
        template_id = page.url.rsplit("/", 1)[1]

        # 5. Create the campaign, read the launch confirmation, launch, watch 100 %.
        await page.goto(f"{base}/campagnes/nouvelle?public={audience_id}&modele={template_id}")
        await page.fill("#name", "Nouvelles des domiciliés")
        await page.fill("#sender", "33644630000")
        await page.click("button:has-text('Continuer')")
        await page.wait_for_url(re.compile(r"/campagnes/\d+/lancement$"))
        recipients = int(await page.get_attribute("[data-plan=recipients]", "data-value") or "0")
        assert recipients > 0
        # The message as people get it, not the template.
        await expect(page.locator("[data-sample-text]")).to_have_count(3)
        first = await page.text_content("[data-sample-text]") or ""
        assert first.startswith("Bonjour ") and "{{" not in first and "04 72 00 00 00" in first
        await screenshot(page, "06-campagne-confirmation")
        await page.check("#confirmer")
        await page.click("button:has-text('Lancer la campagne')")
        await page.wait_for_url(re.compile(r"/campagnes/\d+$"))
        campaign_id = int(page.url.rsplit("/", 1)[1])
        await expect(page.locator(f"[data-progress-label='{campaign_id}']")).to_have_text(
            "100 %", timeout=45_000
        )
        await expect(page.locator(f"[data-status-campaign='{campaign_id}']")).to_have_text(
            "terminée", timeout=15_000
        )
        assert len(app.emulator.received) >= recipients
        await screenshot(page, "07-campagne-progression")

        # 6. A person of the audience replies "je suis tombée".
        message = await Message.filter(campaign_id=campaign_id, status="delivered").first()
        if message is None:
            message = await Message.filter(
                campaign_id=campaign_id, sent_at__not_isnull=True
            ).first()
        assert message is not None and message.address
        inbound = {
            "msisdn": message.address.lstrip("+"),
            "to": "33644630000",
            "messageId": "BROWSER0001",
            "text": "je suis tombée",
            "type": "text",
            "message-timestamp": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        }
        async with aiohttp.ClientSession() as http:
            signed = sign_params(
                inbound,
                SIGNATURE_SECRET,
                "sha256",
                int(datetime.now(UTC).timestamp()),
                nonce="browser-flow",
            )
            posted = await http.post(f"{base}/webhooks/vonage/inbound", json=signed)
            assert posted.status < 300

        async def escalated() -> bool:
            return await Escalation.filter(queue="urgence", person_id=message.person_id).exists()

        await _wait_for(escalated, what="the urgence escalation")
        await page.reload()
        await screenshot(page, "08-campagne-entonnoir")

        # 7. A caseworker takes it from "urgence", adds a note, resolves it.
        caseworker = await browser.new_context(viewport={"width": 1024, "height": 1366})
        tablet = await caseworker.new_page()
        tablet.on("pageerror", lambda exc: errors.append(str(exc)))
        await login(tablet, base, "caseworker@ccas.test")
        await tablet.goto(f"{base}/files/urgence")
        await expect(tablet.locator("time[data-due]").first).to_have_text(re.compile(r"dans \d+"))
        await screenshot(tablet, "09-file-urgence")
        await tablet.click("button:has-text('Prendre le suivant')")
        await tablet.wait_for_url(re.compile(r"/situations/\d+$"))
        await expect(tablet.locator(".sms-bubble.reply").first).to_have_text("je suis tombée")
        await tablet.fill("#note-text", "Appelée : chute sans gravité, voisine prévenue.")
        await tablet.click("button:has-text('Ajouter la note')")
        await expect(tablet.locator(".notes")).to_contain_text("chute sans gravité")
        await tablet.select_option("#outcome", "joint")
        await tablet.click("button:has-text('Clôturer')")
        await expect(tablet.locator("main")).to_contain_text("Situation clôturée.")
        await screenshot(tablet, "10-situation-cloturee")
        escalation = await Escalation.get(queue="urgence", person_id=message.person_id)
        assert escalation.status == EscalationStatus.RESOLVED
        assert escalation.outcome == "joint"

        # 8. The admin pages.
        admin = await browser.new_context(viewport={"width": 1280, "height": 900})
        admin_page = await admin.new_page()
        await login(admin_page, base, "admin@ccas.test")
        await admin_page.goto(f"{base}/journal?action=escalation.resolve")
        await expect(admin_page.locator("tbody")).to_contain_text(
            "caseworker@ccas.test a clôturé la situation de"
        )
        await screenshot(admin_page, "11-journal")
        await admin_page.goto(f"{base}/journal")
        journal = await admin_page.text_content("tbody") or ""
        codes = re.findall(r"\b[a-z_]+\.[a-z_]+\b", re.sub(r"\S+@\S+", "", journal))
        assert not codes, codes  # sentences, not person.view or escalation.claim
        await screenshot(admin_page, "11-journal-complet")
        await admin_page.goto(f"{base}/equipe")
        await screenshot(admin_page, "12-equipe")
        await browser.close()
        assert not errors, errors
    assert time.monotonic() - started < 90

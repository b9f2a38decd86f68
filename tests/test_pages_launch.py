"""The launch confirmation shows the real message, refuses placeholders; the campaign page and
the dashboard say why a running campaign waits; live figures read well in console mode."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from aiohttp.test_utils import TestClient

from campaigns.models import AuditEvent, Message, MessageStatus, Staff
from tests.pages_support import assert_forms_carry_csrf, login, make_person, post_form

# Sunday 29 November 2026, 20:00 in Paris: the default window (mon-sat 09:00-19:00) is shut.
SUNDAY_EVENING = datetime(2026, 11, 29, 19, 0, tzinfo=UTC)


async def _people() -> None:
    await make_person(civility="Madame", first_name="Paulette", last_name="ANDRE",
                      identity_key="andre|paulette|", mobile="+33611000001")  # fmt: skip
    await make_person(civility=None, first_name="ÉMILE", last_name="BERNARD",
                      identity_key="bernard|emile|", mobile="+33611000002")  # fmt: skip
    await make_person(first_name="Jérôme", last_name="durand", identity_key="durand|jerome|",
                      mobile="+33611000003")  # fmt: skip
    await make_person(first_name="Henri", last_name="FIXE", identity_key="fixe|henri|",
                      mobile=None, landline="+33145678910")  # fmt: skip


async def _campaign(client: TestClient, token: str, body: str, hotline: str = "") -> str:
    audience = await post_form(client, "/publics", token, name="Tous")
    audience_id = audience.headers["Location"].rsplit("/", 1)[1]
    template = await post_form(client, "/modeles", token, name="Essai", channel="sms", body=body)
    template_id = template.headers["Location"].rsplit("/", 1)[1]
    created = await post_form(
        client,
        "/campagnes",
        token,
        name="Canicule",
        template_id=template_id,
        audience_id=audience_id,
        sender="+33612000000",
        hotline=hotline,
        expects_replies="oui",
    )
    assert created.status == 303, await created.text()
    return created.headers["Location"].removesuffix("/lancement")


GREETING = (
    "Bonjour {{ person.civility or person.first_name | title }} {{ person.last_name | title }}, "
    "appelez le {{ ccas.hotline }}. Bonne journée !"
)


async def test_confirmation_shows_the_message_for_three_recipients(client, tokens) -> None:
    await _people()
    token = await login(client, "coordinator")
    url = await _campaign(client, token, GREETING, hotline="05 61 22 33 44")
    html = await (await client.get(f"{url}/lancement")).text()
    assert_forms_carry_csrf(html)
    texts = re.findall(r"<div class=\"sms-bubble\" data-sample-text>([^<]*)</div>", html)
    assert texts == [
        "Bonjour Madame Andre, appelez le 05 61 22 33 44. Bonne journée !",
        "Bonjour Émile Bernard, appelez le 05 61 22 33 44. Bonne journée !",
        "Bonjour Jérôme Durand, appelez le 05 61 22 33 44. Bonne journée !",
    ]
    assert "{{" not in html.split("texte-titre")[1]  # the template itself is not shown
    assert "GSM-7 : 160 caractères par SMS" in html
    assert "UCS-2 (accents ou emoji hors alphabet SMS) : 70 caractères par SMS" in html
    assert '<mark class="ucs2">ô</mark>' in html  # why Jérôme's message is UCS-2
    assert re.search(r"data-sample-chars>\d+<", html)
    assert "data-sample-parts>1<" in html
    assert "0,07\u00a0€" in html  # one part at 0.065 €, French style
    assert "Lancement impossible" not in html
    # Showing three people to a coordinator is a view of their records, audited.
    staff = await Staff.get(email="coordinator@ccas.test")
    views = await AuditEvent.filter(action="person.view", actor_id=staff.id).values_list(
        "detail", flat=True
    )
    assert [d["via"] for d in views].count("launch_preview") == 3
    launched = await post_form(client, f"{url}/lancer", token, confirmer="oui")
    assert launched.headers["Location"] == url
    assert await Message.filter(status=MessageStatus.QUEUED).count() == 3


async def test_launch_refused_while_the_ccas_is_a_placeholder(client, tokens) -> None:
    await _people()
    token = await login(client, "coordinator")
    url = await _campaign(client, token, "{{ ccas.name }} : appelez le {{ ccas.hotline }}.")
    html = await (await client.get(f"{url}/lancement")).text()
    assert "Lancement impossible" in html
    assert "Le numéro d&#39;appel est encore celui d&#39;exemple (« 0800 000 000 »)" in html
    assert "Le nom du CCAS est encore celui par défaut (« CCAS »)" in html
    refused = await post_form(client, f"{url}/lancer", token, confirmer="oui")
    assert refused.headers["Location"] == f"{url}/lancement"
    again = await (await client.get(f"{url}/lancement")).text()
    assert "Lancement refusé." in again
    assert not await Message.exists()


async def test_waiting_campaign_says_when_it_will_send(client, tokens, runtime) -> None:
    await _people()
    runtime.clock = lambda: SUNDAY_EVENING
    token = await login(client, "coordinator")
    url = await _campaign(client, token, "Bonjour, appelez-nous.")
    await post_form(client, f"{url}/lancer", token, confirmer="oui")
    reason = "fenêtre d&#39;envoi fermée : envoi à partir de demain à 09:00"
    assert reason in await (await client.get(url)).text()
    state = await (await client.get(f"{url}/etat")).json()
    assert state["status_reason"] == "fenêtre d'envoi fermée : envoi à partir de demain à 09:00"
    assert reason in await (await client.get("/")).text()  # the dashboard says it too


async def test_live_figures_in_console_mode(client, tokens) -> None:
    await _people()
    token = await login(client, "coordinator")
    url = await _campaign(client, token, "Bonjour, appelez-nous.")
    await post_form(client, f"{url}/lancer", token, confirmer="oui")
    campaign_id = int(url.rsplit("/", 1)[1])
    # Two messages have left (as a worker records them); the figures follow.
    sent = await Message.filter(campaign_id=campaign_id, status=MessageStatus.QUEUED).limit(2)
    for message in sent:
        message.status, message.sent_at = MessageStatus.SUBMITTED, datetime.now(UTC)
        await message.save()
    figures = (await (await client.get(f"{url}/etat")).json())["figures"]
    assert figures["parts_sent"] == "2"
    assert figures["cost_actual"] == "0,13\u00a0€"
    assert figures["delivery"] == "sans accusé de réception (mode console)"
    page = await (await client.get(url)).text()
    assert 'data-figure="parts_sent">2<' in page
    assert "sans accusé de réception (mode console)" in page


async def test_people_sorted_without_regard_to_case(client, tokens) -> None:
    await _people()
    await login(client, "coordinator")
    html = await (await client.get("/personnes")).text()
    order = [name for name in ("ANDRE", "BERNARD", "durand", "FIXE") if name in html]
    assert order == ["ANDRE", "BERNARD", "durand", "FIXE"]
    positions = [html.index(name) for name in order]
    assert positions == sorted(positions)

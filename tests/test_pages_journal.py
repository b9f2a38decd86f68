"""What a person reads is French: the journal as sentences, import reasons as grouped labels,
French numbers, local times on the outbox, and the console's "Simuler une réponse" form."""

from __future__ import annotations

import html as html_lib
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from campaigns.core import audit
from campaigns.core.audit import Actor
from campaigns.core.audit_text import ACTION_LABELS, proper_name
from campaigns.models import Escalation, Reply, Staff
from campaigns.web.pages.base import date_fr, datetime_fr, euros_fr, number_fr, percent_fr
from tests.pages_support import DATA, login, make_person, post_form, run_import

DOTTED_CODE = re.compile(r"\b[a-z_]+\.[a-z_]+\b")


def visible_text(markup: str) -> str:
    """The text a reader sees: tags, attributes and scripts gone, entities decoded."""
    return html_lib.unescape(re.sub(r"<[^>]+>", " ", markup))


async def test_journal_reads_as_sentences_without_codes(client, tokens) -> None:
    person = await make_person(first_name="Paulette", last_name="ANDRE", identity_key="andre||")
    coordinator = await Staff.get(email="coordinator@ccas.test")
    coordinator.name = "Sophie Martin"
    await coordinator.save()
    token = await login(client, "coordinator")
    await client.get(f"/personnes/{person.id}")
    await post_form(client, "/publics", token, name="SMS", channel="sms", **{
        "segments_any[]": "domicilies"})  # fmt: skip
    escalation = await Escalation.create(
        person_id=person.id, msisdn=person.mobile, queue="urgence", priority=3,
        open_key=f"p{person.id}:urgence", due_at=datetime.now(UTC),
    )  # fmt: skip
    actor = Actor(coordinator.id, coordinator.email, "coordinator")
    await audit.record(actor, "escalation.claim", "escalation", escalation.id, via="next",
                       queue="urgence")  # fmt: skip
    await audit.record(actor, "person.update", "person", person.id, fields=["mobile", "email"])
    await audit.record(Actor.system(), "escalation.create", "escalation", escalation.id,
                       queue="urgence")  # fmt: skip
    await audit.record(actor, "something.new", "thing", 2, segment=None, keys={"a": 1})
    await login(client, "admin")
    page = await (await client.get("/journal")).text()
    body = visible_text(page.split("<tbody>")[1].split("</tbody>")[0])
    codes = DOTTED_CODE.findall(re.sub(r"\S+@\S+", "", body))  # e-mail addresses aside
    assert "Sophie Martin a consulté la fiche de Paulette Andre." in body
    assert "Sophie Martin a pris en charge la situation de Paulette Andre." in body
    assert "Sophie Martin a modifié la fiche de Paulette Andre." in body
    assert "champs modifiés : portable, courriel" in body
    assert "Le service a ouvert la situation de Paulette Andre." in body
    assert "Sophie Martin a créé le public « SMS »." in body
    assert "critères : " in body and "joignable par" in body
    # No developer language: no dotted codes, no "Objet: person 2", no dict dumps.
    assert not codes, codes
    for raw in ("Objet", " = ", "{", "[", "None", "person 2"):
        assert raw not in body, raw
    # The filters offer French labels too.
    options = visible_text(page.split('id="action"')[1].split("</select>")[0])
    assert "Consultation d'une fiche" in options and not DOTTED_CODE.findall(options)
    filtered = await (await client.get("/journal?action=person.view")).text()
    assert "a consulté la fiche" in filtered and "a pris en charge" not in filtered


def test_every_recorded_action_has_a_french_label() -> None:
    """Each action the service writes (grep of the sources) has its sentence and its label."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "campaigns"
    written = set()
    for path in root.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if "audit.record" not in text:
            continue
        written |= set(re.findall(r"[\"']([a-z]+\.[a-z_]+)[\"'],\s*[\"'][a-z_]+[\"']", text))
    assert written, "the sources were read"
    assert written <= set(ACTION_LABELS), written - set(ACTION_LABELS)


def test_proper_name_keeps_mixed_case() -> None:
    assert proper_name("ANDRE") == "Andre"
    assert proper_name("N'DIAYE-ÇELIK") == "N'Diaye-Çelik"
    assert proper_name("McDonald") == "McDonald"


def test_french_number_money_and_time_formats() -> None:
    assert number_fr(1234) == "1\u00a0234"
    assert euros_fr("97.37") == "97,37\u00a0€"
    assert euros_fr(Decimal("1234.5")) == "1\u00a0234,50\u00a0€"
    assert euros_fr("0.0650", 4) == "0,0650\u00a0€"
    assert percent_fr(0.973) == "97\u00a0%"
    paris = ZoneInfo("Europe/Paris")
    assert datetime_fr("2026-07-14T08:00:00.000+00:00", tz=paris) == "14/07/2026 10:00"
    assert datetime_fr(datetime(2026, 1, 1, 23, 30, tzinfo=UTC), tz=paris) == "02/01/2026 00:30"
    assert date_fr("2026-01-01T23:30:00+00:00", tz=paris) == "02/01/2026"
    assert date_fr("1996-01-30") == "30/01/1996"


async def test_import_reasons_grouped_with_french_labels(client, tokens) -> None:
    token = await login(client, "coordinator")
    job_url = await run_import(client, token, DATA / "registre_domicilies.csv", "domicilies")
    page = await (await client.get(job_url)).text()
    text = visible_text(page)
    for code in ("duplicate_in_file", "invalid_phone", "utf-8-sig", "missing_name"):
        assert code not in text, code
    assert "Encodage détecté" not in text
    groups = re.findall(r'<details class="issue-group" data-issue="([a-z]+-[a-z_]+)">', page)
    assert groups and len(groups) == len(set(groups))  # one folded group per reason
    assert re.search(r"<summary><strong>[^<]+</strong> : [\d\u00a0]+ ligne\(s\)</summary>", page)


@pytest.fixture
def outbox_record(settings) -> None:
    outbox = settings.outbox_dir
    outbox.mkdir(parents=True, exist_ok=True)
    record = {
        "time": "2026-07-14T08:00:00.000+00:00",
        "channel": "sms",
        "to": "+33611000001",
        "parts": 1,
        "text": "Bonjour test",
    }
    (outbox / "outbox.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")


async def test_outbox_local_times_and_simulated_reply(client, tokens, outbox_record) -> None:
    person = await make_person(first_name="Paulette", last_name="ANDRE", mobile="+33611000001")
    token = await login(client, "coordinator")
    page = await (await client.get("/envoyes")).text()
    assert "14/07/2026 10:00" in page  # Paris time, not the file's UTC
    assert "Simuler une réponse" in page and '<option value="+33611000001">' in page
    posted = await post_form(
        client, "/envoyes/reponse", token, number="06 11 00 00 01", text="je suis tombée"
    )
    assert posted.status == 303 and posted.headers["Location"] == "/envoyes"
    result = await (await client.get("/envoyes")).text()
    reply = await Reply.get(person_id=person.id)
    assert "classée <strong>détresse</strong>" in result
    assert f'<a href="/personnes/{person.id}">Paulette Andre</a>' in result
    assert f'href="/situations/{reply.escalation_id}"' in result
    bad = await post_form(client, "/envoyes/reponse", token, number="12", text="oui")
    assert bad.status == 303
    assert "Réponse non simulée" in await (await client.get("/envoyes")).text()


async def test_no_simulation_form_with_a_real_provider(client, tokens, runtime) -> None:
    runtime.settings = runtime.settings.model_copy(update={"sms_provider": "vonage"})
    token = await login(client, "coordinator")
    page = await (await client.get("/envoyes")).text()
    assert "Simuler une réponse" not in page
    refused = await post_form(client, "/envoyes/reponse", token, number="0611000001", text="oui")
    assert refused.status == 303
    assert "mode console" in await (await client.get("/envoyes")).text()

"""Routing by rules and model together: no distress unread, nobody silenced by mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from campaigns.core.runtime import Runtime
from campaigns.models import Escalation, OptOut, Reply
from campaigns.replies.routing import process_reply
from tests.escalation_support import NOW, escalation_runtime, make_person, make_reply

pytestmark = pytest.mark.usefixtures("db")


async def _route(runtime: Runtime, text: str) -> tuple[Reply, Escalation | None]:
    escalation_runtime(runtime)
    person = await make_person()
    stored = await make_reply(NOW, person=person, text=text)
    reply = await process_reply(runtime, stored.id)
    assert reply is not None and reply.processed_at is not None
    escalation = await Escalation.get_or_none(id=reply.escalation_id or 0)
    return reply, escalation


@pytest.mark.parametrize(
    "text",
    [
        "je suis tombée dans la cuisine et je n'arrive pas à me relever",
        "STOP vos messages, je n'ai plus rien à manger depuis trois jours",
        "tout va très bien, juste plus d'électricité depuis une semaine avec les petits",
        "ma voisine n'ouvre plus sa porte depuis 4 jours, ses volets restent fermés",
        "à quoi bon continuer, plus personne ne vient",
    ],
)
async def test_distress_reaches_urgence(runtime: Runtime, text: str) -> None:
    reply, escalation = await _route(runtime, text)
    assert reply.label == "distress"
    assert escalation is not None and escalation.queue == "urgence"
    assert reply.read_at is None  # a person reads it
    assert reply.explanation["queue"] == "urgence"
    assert reply.explanation["distress_source"]


async def test_stop_with_distress_is_honoured_and_read(runtime: Runtime) -> None:
    reply, escalation = await _route(runtime, "STOP. je me suis cassé la jambe, seule chez moi")
    assert escalation is not None and escalation.queue == "urgence"
    assert await OptOut.exists(address=reply.msisdn, active=True)


async def test_a_plain_stop_silences_without_a_queue_but_stays_in_the_inbox(
    runtime: Runtime,
) -> None:
    reply, escalation = await _route(runtime, "STOP")
    assert reply.label == "opt_out" and reply.explanation["auto_opt_out"] is True
    assert escalation is None
    assert await OptOut.exists(address=reply.msisdn, active=True)
    assert reply.read_at is None  # listed unread in the inbox


async def test_a_confident_thanks_is_archived_read(runtime: Runtime) -> None:
    reply, escalation = await _route(runtime, "Merci beaucoup, tout va bien, bonne journée")
    assert reply.label == "thanks" and escalation is None
    assert reply.auto_archived is True and reply.read_at is not None
    assert reply.explanation["archived"] is True
    assert not await OptOut.exists(address=reply.msisdn)


@pytest.mark.parametrize("text", ["Est-ce que le colis de Noël est maintenu ?", "hmm", "🙃🙃"])
async def test_anything_else_is_read_by_someone(runtime: Runtime, text: str) -> None:
    reply, escalation = await _route(runtime, text)
    assert escalation is not None, reply.explanation
    assert not await OptOut.exists(address=reply.msisdn)


@pytest.mark.parametrize("text", ["", "x" * 10_000, "\x01\x02\x7f junk \ufffd", "😀" * 50])
async def test_bad_input_gets_a_label_and_a_route(runtime: Runtime, text: str) -> None:
    reply, escalation = await _route(runtime, text)
    assert reply.label in {"opt_out", "callback", "distress", "thanks", "other"}
    assert escalation is not None or reply.auto_archived or reply.explanation["auto_opt_out"]


async def test_the_ccas_rule_file_of_the_settings_decides(runtime: Runtime, tmp_path: Path) -> None:
    """The rule file comes with the process's settings (CAMPAIGNS_REPLY_RULES), not from
    the environment the job happens to run in."""
    rules = tmp_path / "ccas.toml"
    rules.write_text(
        '[[rule]]\nid = "ccas_colis"\nlabel = "callback"\npriority = 75\n'
        "patterns = ['colis de noel']\n",
        encoding="utf-8",
    )
    runtime.settings.reply_rules = rules
    reply, _ = await _route(runtime, "Est-ce que le colis de Noël est maintenu ?")
    assert reply.rule == "ccas_colis"

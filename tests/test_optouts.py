"""Opt-outs: STOP with one confirmation, START, running campaigns, unsubscribe links."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from aiohttp.test_utils import TestClient, TestServer

from campaigns.core.audit import Actor
from campaigns.core.runtime import Runtime
from campaigns.models import AuditEvent, Escalation, MessageStatus, OptOut, Reply
from campaigns.registry.optouts import (
    is_opted_out,
    lift_opt_out,
    opt_out,
    opted_out_among,
    read_unsubscribe_token,
    unsubscribe_token,
    unsubscribe_url,
)
from campaigns.replies.routing import confirmation_text, process_reply
from campaigns.rules.sms_encoding import analyse
from campaigns.web import routes, unsubscribe
from campaigns.web.app import create_app
from providers.console import read_outbox
from tests.test_replies import campaign_run, message, person, store

STAFF = Actor(7, "coordinatrice@ccas.test", "coordinator")
CONFIRMATION = "Vous ne recevrez plus de SMS du CCAS. Pour vous réinscrire, répondez START."


def sms_sent(runtime: Runtime, to: str) -> list[dict]:
    return [
        record
        for record in read_outbox(runtime.settings.outbox_dir)
        if record["channel"] == "sms" and record["to"] == to
    ]


async def actions(action: str) -> int:
    return await AuditEvent.filter(action=action).count()


def test_confirmation_is_one_gsm7_segment() -> None:
    text = confirmation_text("CCAS d'Amiens")
    analysis = analyse(text)
    assert (analysis.encoding, analysis.segments, analysis.text) == ("GSM-7", 1, text)
    assert confirmation_text("CCAS") == CONFIRMATION


async def test_stop_opts_out_and_confirms_exactly_once(runtime: Runtime) -> None:
    """STOP: an active opt-out from this reply, one confirmation, even when the job runs again."""
    await person("Moreau", "+33620202020")
    reply_id = await store("STOP", "33620202020")
    for _ in range(2):
        await process_reply(runtime, reply_id)
        # A crash before processed_at was written makes the job run everything again.
        await Reply.filter(id=reply_id).update(processed_at=None)
    reply = await process_reply(runtime, reply_id)
    assert reply is not None and reply.label == "opt_out"
    row = await OptOut.get(address="+33620202020")
    assert (row.active, row.channel, row.source, row.reply_id) == (True, "sms", "reply", reply_id)
    sent = sms_sent(runtime, "+33620202020")
    assert [(s["text"], s["sender"], s["message_id"]) for s in sent] == [
        (CONFIRMATION, "33644630000", f"optout-{reply_id}")
    ]
    assert reply.confirmation_sent_at is not None
    assert await actions("optout.create") == 1
    assert await actions("optout.confirmation") == 1
    # An opt-out alone never reaches a caseworker's queue.
    assert reply.escalation_id is None and await Escalation.all().count() == 0
    # A second STOP from an address already opted out is not confirmed again.
    await process_reply(runtime, await store("stop", "33620202020"))
    assert len(sms_sent(runtime, "+33620202020")) == 1
    assert await is_opted_out("+33620202020")


async def test_stop_with_distress_opts_out_and_escalates_to_urgence(runtime: Runtime) -> None:
    someone = await person("Garnier", "+33621212121")
    reply = await process_reply(runtime, await store("STOP je suis tombée", "33621212121"))
    assert reply is not None
    assert (reply.label, reply.opt_out_requested) == ("distress", True)
    assert await is_opted_out("+33621212121")
    assert len(sms_sent(runtime, "+33621212121")) == 1
    escalation = await Escalation.get(id=reply.escalation_id)
    assert (escalation.queue, escalation.person_id) == ("urgence", someone.id)


async def test_stop_with_words_no_rule_knows_opts_out_and_reaches_triage(
    runtime: Runtime,
) -> None:
    """An opt-out that says more than the request is honoured and confirmed, and a
    caseworker reads it: no distress rule may know "mon chien est mort"."""
    someone = await person("Roussel", "+33621313131")
    reply = await process_reply(runtime, await store("STOP mon chien est mort", "33621313131"))
    assert reply is not None
    assert (reply.label, reply.opt_out_requested) == ("opt_out", True)
    assert await is_opted_out("+33621313131")
    assert len(sms_sent(runtime, "+33621313131")) == 1
    escalation = await Escalation.get(id=reply.escalation_id)
    assert (escalation.queue, escalation.person_id) == ("triage", someone.id)


async def test_start_lifts_and_a_later_stop_is_confirmed_again(runtime: Runtime) -> None:
    await person("Chevalier", "+33622222222")
    await process_reply(runtime, await store("STOP", "33622222222"))
    start = await process_reply(runtime, await store("START", "33622222222"))
    row = await OptOut.get(address="+33622222222")
    assert (row.active, row.lifted_by) == (False, "réponse SMS")
    assert row.lifted_at is not None
    assert not await is_opted_out("+33622222222")
    assert await actions("optout.lift") == 1
    assert start is not None and start.escalation_id is None
    again = await process_reply(runtime, await store("Arrêt", "33622222222"))
    row = await OptOut.get(address="+33622222222")
    assert (row.active, row.reply_id, row.lifted_at) == (True, again.id, None)  # type: ignore[union-attr]
    assert await OptOut.filter(address="+33622222222").count() == 1
    assert len(sms_sent(runtime, "+33622222222")) == 2


async def test_opt_out_skips_queued_messages_of_running_campaigns(runtime: Runtime) -> None:
    """Nothing more leaves for that address: its queued messages become skipped at once."""
    address = "+33623232323"
    someone = await person("Lambert", address)
    other = await person("Fontaine", "+33624242424")
    running, paused = await campaign_run(), await campaign_run()
    sent = await message(running, someone.id, address, sent_at=datetime.now(UTC))
    queued = [
        await message(await campaign_run(), someone.id, address, MessageStatus.QUEUED),
        await message(paused, someone.id, address, MessageStatus.QUEUED),
    ]
    untouched = await message(running, other.id, "+33624242424", MessageStatus.QUEUED)
    reply = await process_reply(runtime, await store("stop sms", address.removeprefix("+")))
    assert reply is not None and reply.label == "opt_out"
    for queued_message in queued:
        await queued_message.refresh_from_db()
        assert (queued_message.status, queued_message.skip_reason) == (
            MessageStatus.SKIPPED,
            "opted_out",
        )
    await sent.refresh_from_db()
    await untouched.refresh_from_db()
    assert sent.status == MessageStatus.DELIVERED
    assert untouched.status == MessageStatus.QUEUED
    event = await AuditEvent.get(action="optout.create")
    assert event.detail["skipped_messages"] == 2


async def test_staff_opt_out_and_re_consent(runtime: Runtime) -> None:
    """Opt-outs by address: e-mail folded to lower case, lifted by staff with a reason."""
    result = await opt_out("Jeanne.Dupont@Exemple.FR", source="staff", actor=STAFF)
    assert result.created and result.opt_out.channel == "email"
    assert not (await opt_out("jeanne.dupont@exemple.fr", source="staff", actor=STAFF)).created
    assert await opted_out_among(["jeanne.dupont@exemple.fr", "autre@exemple.fr"]) == {
        "jeanne.dupont@exemple.fr"
    }
    assert await lift_opt_out("JEANNE.DUPONT@exemple.fr", actor=STAFF, reason="consentement")
    assert not await lift_opt_out("jeanne.dupont@exemple.fr", actor=STAFF, reason="deux fois")
    event = await AuditEvent.get(action="optout.lift")
    assert (event.actor_id, event.detail) == (7, {"reason": "consentement"})
    assert await opted_out_among([]) == set()


async def test_concurrent_opt_outs_create_one(pg_db: str) -> None:
    results = await asyncio.gather(
        *(opt_out("+33625252525", source="reply", actor=STAFF) for _ in range(6))
    )
    assert sum(result.created for result in results) == 1
    assert await OptOut.filter(address="+33625252525").count() == 1
    assert await actions("optout.create") == 1


def test_unsubscribe_tokens() -> None:
    token = unsubscribe_token("secret", "Jeanne@Exemple.fr")
    assert read_unsubscribe_token("secret", token) == "jeanne@exemple.fr"
    assert read_unsubscribe_token("autre-secret", token) is None
    encoded, mac = token.split(".")
    forged = unsubscribe_token("secret", "x@y.fr").split(".")[0] + "." + mac
    for bad in (forged, encoded, "", ".", "%%%.%%%", token[:-2], "a" * 2000):
        assert read_unsubscribe_token("secret", bad) is None
    assert unsubscribe_url("https://ccas.example/", "secret", "jeanne@exemple.fr") == (
        f"https://ccas.example/desabonnement/{token}"
    )


async def test_unsubscribe_page_asks_then_the_post_opts_out(runtime: Runtime) -> None:
    """Following the link only shows a button (mail scanners follow links); the POST acts."""
    app = create_app(runtime)
    if unsubscribe.router not in routes.api_routers():
        unsubscribe.router.add_to(app)  # until the route list names this router
    async with TestClient(TestServer(app)) as client:
        await _unsubscribe_flow(runtime, client)


async def _unsubscribe_flow(runtime: Runtime, client: TestClient) -> None:
    assert runtime.settings.secret_key
    url = f"/desabonnement/{unsubscribe_token(runtime.settings.secret_key, 'a@exemple.fr')}"
    page = await client.get(url)
    assert page.status == 200
    body = await page.text()
    assert "Confirmer le désabonnement" in body and 'method="post"' in body
    assert not await is_opted_out("a@exemple.fr")
    done = await client.post(url, data={"List-Unsubscribe": "One-Click"})
    assert done.status == 200 and "Désabonnement confirmé" in await done.text()
    row = await OptOut.get(address="a@exemple.fr")
    assert (row.active, row.channel, row.source) == (True, "email", "unsubscribe_link")
    assert (await client.post(url)).status == 200  # twice is fine
    bad = await client.get("/desabonnement/abc.def")
    assert bad.status == 404 and "Lien invalide" in await bad.text()
    assert (await client.post("/desabonnement/abc.def")).status == 404


async def test_lifted_at_uses_the_clock(db: str) -> None:
    at = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    await opt_out("+33626262626", source="reply", actor=STAFF)
    await lift_opt_out("+33626262626", actor=STAFF, reason="start", clock=lambda: at)
    row = await OptOut.get(address="+33626262626")
    assert abs(row.lifted_at - at) < timedelta(seconds=1)  # type: ignore[operator]

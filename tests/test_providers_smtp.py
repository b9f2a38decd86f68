"""The SMTP provider against a real aiosmtpd server (threaded controller on a free port)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket

import pytest
from aiosmtpd.controller import Controller

from providers.base import EmailProvider, EmailRequest, Outcome
from providers.smtp import SmtpEmailProvider, message_id_header

SENDER = "ccas@ville.example.org"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Recorder:
    """Accepts everything; answers DATA with the next scripted reply when there is one."""

    def __init__(self, data_replies: list[str] | None = None, rcpt_reply: str | None = None):
        self.messages: list[dict] = []
        self.data_replies = list(data_replies or [])
        self.rcpt_reply = rcpt_reply
        self.data_delay = 0.0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        reply = self.data_replies.pop(0) if self.data_replies else "250 Message accepted"
        if reply.startswith("250"):
            self.messages.append(
                {
                    "peer": session.peer,
                    "from": envelope.mail_from,
                    "to": list(envelope.rcpt_tos),
                    "message": email.message_from_bytes(
                        envelope.original_content, policy=email.policy.default
                    ),
                }
            )
        return reply


@pytest.fixture
def server():
    """Yields a function starting a controller around a handler; stops them all after."""
    controllers: list[Controller] = []

    def start(handler: Recorder, port: int | None = None) -> Controller:
        controller = Controller(handler, hostname="127.0.0.1", port=port or free_port())
        controller.start()
        controllers.append(controller)
        return controller

    yield start
    for controller in controllers:
        if not controller.loop.is_closed():  # a test may have stopped it already
            controller.stop()


def request(n: int = 1, html: str | None = "<p>Bonjour</p>", **headers: str) -> EmailRequest:
    return EmailRequest(
        message_id=f"msg-{n}",
        to="mme.martin@example.org",
        sender=SENDER,
        subject="Canicule : le CCAS prend de vos nouvelles",
        text="Bonjour Madame, appelez le 05 00 00 00 00.",
        html=html,
        headers=headers,
    )


def provider(port: int, timeout: float = 5) -> SmtpEmailProvider:
    return SmtpEmailProvider("127.0.0.1", port, start_tls=False, sender=SENDER, timeout=timeout)


async def test_sends_a_multipart_message_with_our_headers(server) -> None:
    handler = Recorder()
    smtp = provider(server(handler).port)
    assert isinstance(smtp, EmailProvider)
    unsubscribe = "<mailto:stop@ville.example.org?subject=msg-1>"
    try:
        result = await smtp.send_email(request(1, **{"List-Unsubscribe": unsubscribe}))
    finally:
        await smtp.close()
    assert result.outcome is Outcome.SUBMITTED
    assert result.provider_ids == (message_id_header("msg-1", SENDER),)
    [got] = handler.messages
    assert (got["from"], got["to"]) == (SENDER, ["mme.martin@example.org"])
    msg = got["message"]
    assert msg.get_content_type() == "multipart/alternative"
    assert msg["Message-ID"] == "<msg-1@ville.example.org>"
    assert msg["List-Unsubscribe"] == unsubscribe
    assert msg["Subject"] == "Canicule : le CCAS prend de vos nouvelles"
    assert msg.get_body(("plain",)).get_content().startswith("Bonjour Madame")
    assert msg.get_body(("html",)).get_content().strip() == "<p>Bonjour</p>"


async def test_text_only_message_is_not_multipart(server) -> None:
    handler = Recorder()
    smtp = provider(server(handler).port)
    try:
        await smtp.send_email(request(html=None))
    finally:
        await smtp.close()
    assert handler.messages[0]["message"].get_content_type() == "text/plain"


async def test_one_connection_for_many_messages(server) -> None:
    handler = Recorder()
    smtp = provider(server(handler).port)
    try:
        results = await asyncio.gather(*(smtp.send_email(request(n)) for n in range(10)))
    finally:
        await smtp.close()
    assert all(r.outcome is Outcome.SUBMITTED for r in results)
    assert len({m["peer"] for m in handler.messages}) == 1
    assert smtp.connections_opened == 1


async def test_reconnects_when_the_server_went_away(server) -> None:
    first = server(Recorder())
    smtp = provider(first.port)
    try:
        assert (await smtp.send_email(request(1))).outcome is Outcome.SUBMITTED
        # Restart the server on the same port: the kept connection is now dead.
        await asyncio.to_thread(first.stop)
        second = Recorder()
        server(second, port=first.port)
        result = await smtp.send_email(request(2))
    finally:
        await smtp.close()
    assert result.outcome is Outcome.SUBMITTED
    assert len(second.messages) == 1 and smtp.connections_opened == 2


@pytest.mark.parametrize(
    ("handler", "outcome", "reason"),
    [
        (lambda: Recorder(data_replies=["451 4.3.0 Try again later"]), Outcome.RETRY, "smtp:451"),
        (lambda: Recorder(data_replies=["550 5.7.1 Rejected"]), Outcome.FAILED, "smtp:550"),
        (lambda: Recorder(rcpt_reply="550 5.1.1 No such user"), Outcome.FAILED, "smtp:550"),
        (lambda: Recorder(rcpt_reply="452 4.2.2 Mailbox full"), Outcome.RETRY, "smtp:452"),
    ],
)
async def test_refusals_map_to_outcomes(server, handler, outcome, reason) -> None:
    smtp = provider(server(handler()).port)
    try:
        result = await smtp.send_email(request())
    finally:
        await smtp.close()
    assert result.outcome is outcome
    assert result.reason.startswith(reason)


async def test_451_then_250_on_the_same_connection(server) -> None:
    handler = Recorder(data_replies=["451 4.3.0 Try again later"])
    smtp = provider(server(handler).port)
    try:
        first = await smtp.send_email(request(1))
        second = await smtp.send_email(request(1))
    finally:
        await smtp.close()
    assert (first.outcome, second.outcome) == (Outcome.RETRY, Outcome.SUBMITTED)
    assert len(handler.messages) == 1 and smtp.connections_opened == 1


async def test_no_answer_to_data_is_unconfirmed(server) -> None:
    handler = Recorder()
    handler.data_delay = 1.5
    smtp = provider(server(handler).port, timeout=0.5)
    try:
        result = await smtp.send_email(request())
    finally:
        await smtp.close()
    assert result.outcome is Outcome.UNCONFIRMED and result.reason == "smtp:lost-in-data"


async def test_nothing_listening_is_retry() -> None:
    smtp = provider(free_port(), timeout=2)
    try:
        result = await smtp.send_email(request())
    finally:
        await smtp.close()
    assert result.outcome is Outcome.RETRY and result.reason.startswith("smtp:connect")

"""An e-mail campaign launched and sent through the SMTP provider to a real aiosmtpd server."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller

from campaigns.core.null_services import NoRateLimit
from campaigns.core.runtime import Runtime
from campaigns.models import Campaign, CampaignStatus, Message
from campaigns.registry.optouts import read_unsubscribe_token
from campaigns.rules.send_window import parse_send_window
from providers.smtp import SmtpEmailProvider
from tests.dispatch_support import T_MONDAY, Clock, counts, launch_campaign
from workers.inprocess import InProcessQueue

SUBJECT = "{{ ccas.name }} : des nouvelles de vous, {{ person.civility }} {{ person.last_name }}"
BODY = (
    "Bonjour {{ person.civility }} {{ person.last_name }},\n\n"
    "Le {{ ccas.name }} prend des nouvelles. Appelez-nous au {{ ccas.hotline }}."
)


class Mailbox:
    """An aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture
async def smtp_rt(runtime: Runtime, mailbox: tuple[Mailbox, int]) -> AsyncIterator[Runtime]:
    await runtime.email.close()
    runtime.email = SmtpEmailProvider(
        "127.0.0.1", mailbox[1], start_tls=False, sender="ccas@ville.test", timeout=5
    )
    runtime.settings.email_sender = "ccas@ville.test"
    runtime.settings.public_url = "https://ccas.ville.test"
    runtime.settings.ccas_name = "CCAS de Ville"
    runtime.settings.send_window = "always"
    settings = runtime.settings
    runtime.send_window = parse_send_window(
        settings.send_window, settings.timezone, settings.holidays
    )
    runtime.clock = Clock(T_MONDAY)
    runtime.rate_limiter = NoRateLimit()
    yield runtime


async def test_an_email_campaign_reaches_the_smtp_server(
    smtp_rt: Runtime, mailbox: tuple[Mailbox, int], db: str
) -> None:
    box, _ = mailbox
    launched = await launch_campaign(smtp_rt, 4, channel="email", body=BODY, subject=SUBJECT)
    assert isinstance(smtp_rt.queue, InProcessQueue)
    await smtp_rt.queue.run_until_idle()

    assert await counts(launched["campaign_id"]) == {"submitted": 4}
    assert (await Campaign.get(id=launched["campaign_id"])).status == CampaignStatus.COMPLETED
    assert sorted(rcpt[0] for _, rcpt, _ in box.messages) == [
        f"personne{i}@exemple.test" for i in range(4)
    ]
    for sender, rcpts, msg in box.messages:
        assert sender == "ccas@ville.test"
        stored = await Message.get(address=rcpts[0])
        assert msg["Subject"].startswith("CCAS de Ville : des nouvelles de vous, Madame Nom")
        assert msg["Subject"] == stored.subject
        plain = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        assert "Appelez-nous au 0800 000 000" in plain and "0800 000 000" in html
        header = str(msg["List-Unsubscribe"]).strip()  # folded: the long URL starts a line
        assert header.startswith("<https://ccas.ville.test/desabonnement/") and header.endswith(">")
        url = header[1:-1]
        assert url in plain and url in html  # the same link in both parts
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        token = url.rsplit("/", 1)[1]
        assert read_unsubscribe_token(smtp_rt.settings.signing_key, token) == stored.address.lower()
        assert msg["Message-ID"].startswith(f"<{stored.id}@")

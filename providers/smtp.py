"""E-mail through an SMTP server with aiosmtplib, over one connection reused across sends.

The mail transaction is driven step by step (MAIL, RCPT, DATA) rather than with
`send_message`, so that a lost connection is judged by where it happened: before DATA
nothing was delivered and we reconnect and try again at once; during DATA the server
may have queued the message, so the send is UNCONFIRMED and never replayed here.
"""

from __future__ import annotations

import asyncio
import email.policy
import logging
import re
from dataclasses import replace
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib
from aiosmtplib import (
    SMTPException,
    SMTPRecipientRefused,
    SMTPResponseException,
)

from providers.base import EmailRequest, Outcome, SendResult

__all__ = ["SmtpEmailProvider", "build_message", "describe_failure", "message_id_header"]

logger = logging.getLogger(__name__)

_CONNECTION_ERRORS = (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError)
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9._-]")


def message_id_header(message_id: str, sender: str) -> str:
    """A Message-ID derived from our id, so bounces and replies can be traced back."""
    domain = sender.rpartition("@")[2].strip(" >") or "campaigns.invalid"
    return f"<{_UNSAFE_ID_CHARS.sub('_', message_id)}@{domain}>"


def build_message(req: EmailRequest, sender: str) -> EmailMessage:
    """A text message, multipart/alternative when there is an HTML version."""
    msg = EmailMessage()
    msg["From"] = req.sender or sender
    msg["To"] = req.to
    msg["Subject"] = req.subject
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = message_id_header(req.message_id, req.sender or sender)
    for name, value in req.headers.items():
        # Caller headers (List-Unsubscribe, List-Unsubscribe-Post...) replace defaults.
        del msg[name]
        msg[name] = value
    msg.set_content(req.text)
    if req.html:
        msg.add_alternative(req.html, subtype="html")
    return msg


def _response_result(exc: SMTPResponseException, what: str) -> SendResult:
    text = " ".join(str(exc.message).split())[:120]
    outcome = Outcome.RETRY if 400 <= exc.code < 500 else Outcome.FAILED
    words = " ".join(word for word in (what, text) if word)
    return SendResult(outcome, parts=0, reason=f"smtp:{exc.code} {words}".strip())


def describe_failure(reason: str | None) -> str | None:
    """A short French description of our reason code ("smtp:550 ..."); None if not ours."""
    provider, _, rest = (reason or "").partition(":")
    if provider != "smtp":
        return None
    word = rest.split(" ", 1)[0]
    if word.startswith("5"):
        return "adresse refusée par le serveur de messagerie"
    if word.startswith("4"):
        return "serveur de messagerie temporairement indisponible"
    if word == "lost-in-data":
        return "connexion perdue pendant l'envoi"
    return "serveur de messagerie injoignable"


class _LostBeforeData(Exception):
    """The connection dropped before DATA: nothing was delivered."""


class SmtpEmailProvider:
    """Sends e-mail with aiosmtplib; one connection, one transaction at a time."""

    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        start_tls: bool,
        sender: str,
        timeout: float = 30,
    ) -> None:
        self._host = host
        self._port = port
        self._username = username
        self._password = password
        self._start_tls = start_tls
        self._sender = sender
        self._timeout = timeout
        self._smtp: aiosmtplib.SMTP | None = None
        self._lock = asyncio.Lock()
        self.connections_opened = 0  # for tests and diagnostics

    async def _connection(self) -> aiosmtplib.SMTP:
        if self._smtp is not None and self._smtp.is_connected:
            return self._smtp
        await self._drop()
        smtp = aiosmtplib.SMTP(
            hostname=self._host,
            port=self._port,
            start_tls=self._start_tls,
            timeout=self._timeout,
            username=self._username,
            password=self._password,
        )
        await smtp.connect()
        self._smtp = smtp
        self.connections_opened += 1
        return smtp

    async def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()

    async def _reset(self, smtp: aiosmtplib.SMTP) -> None:
        try:
            await smtp.rset()
        except (SMTPException, *_CONNECTION_ERRORS):
            await self._drop()

    async def _transaction(self, smtp: aiosmtplib.SMTP, req: EmailRequest, data: bytes) -> str:
        """MAIL, RCPT, DATA; returns the server's answer to DATA."""
        envelope_from = req.sender or self._sender
        try:
            await smtp.mail(envelope_from)
            errors: dict[str, SMTPRecipientRefused] = {}
            for recipient in [req.to]:
                try:
                    await smtp.rcpt(recipient)
                except SMTPRecipientRefused as exc:
                    errors[recipient] = exc
            if errors:
                # One recipient per message: any refusal is a refusal of the message.
                raise next(iter(errors.values()))
        except _CONNECTION_ERRORS as exc:
            raise _LostBeforeData from exc
        response = await smtp.data(data)
        return response.message

    async def send_email(self, req: EmailRequest) -> SendResult:
        result = await self._send(req)
        if result.reason is None:
            return result
        return replace(result, description=describe_failure(result.reason))

    async def _send(self, req: EmailRequest) -> SendResult:
        msg = build_message(req, self._sender)
        data = msg.as_bytes(policy=email.policy.SMTP)
        async with self._lock:
            for attempt in (1, 2):
                try:
                    smtp = await self._connection()
                except aiosmtplib.SMTPAuthenticationError as exc:
                    # Our credentials, not the message: keep it for later.
                    await self._drop()
                    result = _response_result(exc, "auth")
                    return SendResult(Outcome.RETRY, parts=0, reason=result.reason)
                except (SMTPException, OSError) as exc:
                    await self._drop()
                    return SendResult(Outcome.RETRY, parts=0, reason=_connect_reason(exc))
                try:
                    answer = await self._transaction(smtp, req, data)
                except _LostBeforeData:
                    await self._drop()
                    if attempt == 1:
                        continue  # a stale pooled connection: nothing left, try a fresh one
                    return SendResult(Outcome.RETRY, parts=0, reason="smtp:disconnected")
                except SMTPResponseException as exc:
                    if exc.code == 421:  # the server is closing the channel
                        await self._drop()
                    else:
                        await self._reset(smtp)
                    return _response_result(exc, "")
                except _CONNECTION_ERRORS:
                    await self._drop()
                    logger.warning("smtp: message %s lost during DATA", req.message_id)
                    return SendResult(Outcome.UNCONFIRMED, parts=0, reason="smtp:lost-in-data")
                logger.debug("smtp: message %s accepted: %s", req.message_id, answer)
                return SendResult(Outcome.SUBMITTED, (msg["Message-ID"],), parts=1)
        raise AssertionError("unreachable")

    async def close(self) -> None:
        async with self._lock:
            smtp, self._smtp = self._smtp, None
            if smtp is not None and smtp.is_connected:
                try:
                    await smtp.quit()
                except (SMTPException, *_CONNECTION_ERRORS):
                    smtp.close()


def _connect_reason(exc: BaseException) -> str:
    if isinstance(exc, SMTPResponseException):
        return f"smtp:{exc.code} connect"
    return f"smtp:connect {type(exc).__name__}"

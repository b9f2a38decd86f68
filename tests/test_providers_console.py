"""The console providers: what they write to the outbox, and that appends never interleave."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from pathlib import Path

from providers.base import EmailProvider, EmailRequest, Outcome, SmsProvider, SmsRequest
from providers.console import OUTBOX_FILE, ConsoleEmailProvider, ConsoleSmsProvider, read_outbox

ROOT = Path(__file__).resolve().parents[1]
PHONE = "+33612345678"


def sms(n: int, text: str = "Bonjour Mme Martin, le CCAS vous appelle.") -> SmsRequest:
    return SmsRequest(f"m-{n}", PHONE, "CCAS", text, unicode=False)


async def test_sms_is_recorded_and_submitted(tmp_path: Path, caplog) -> None:
    provider = ConsoleSmsProvider(tmp_path / "outbox")
    assert isinstance(provider, SmsProvider)
    with caplog.at_level(logging.INFO, logger="providers.console"):
        result = await provider.send_sms(sms(1, "x" * 200))
    assert result.outcome is Outcome.SUBMITTED and result.parts == 2
    [provider_id] = result.provider_ids
    assert provider_id.startswith("console-")
    [record] = read_outbox(tmp_path / "outbox")
    assert record["provider_id"] == provider_id and record["message_id"] == "m-1"
    assert (record["channel"], record["to"], record["sender"]) == ("sms", PHONE, "CCAS")
    assert record["text"] == "x" * 200 and record["time"]
    # Logs carry ids, never the number or the text.
    assert "m-1" in caplog.text
    assert PHONE not in caplog.text and "xxxx" not in caplog.text


async def test_email_is_recorded_with_headers(tmp_path: Path, caplog) -> None:
    provider = ConsoleEmailProvider(tmp_path)
    assert isinstance(provider, EmailProvider)
    req = EmailRequest(
        "e-1",
        "mme.martin@example.org",
        "ccas@example.org",
        "Canicule : le CCAS prend de vos nouvelles",
        "Bonjour",
        "<p>Bonjour</p>",
        {"List-Unsubscribe": "<mailto:stop@example.org>"},
    )
    with caplog.at_level(logging.INFO):
        result = await provider.send_email(req)
    assert result.outcome is Outcome.SUBMITTED
    [record] = read_outbox(tmp_path)
    assert record["channel"] == "email" and record["subject"].startswith("Canicule")
    assert record["headers"] == {"List-Unsubscribe": "<mailto:stop@example.org>"}
    assert "mme.martin" not in caplog.text


async def test_outbox_reads_newest_first_with_a_limit(tmp_path: Path) -> None:
    provider = ConsoleSmsProvider(tmp_path)
    for n in range(5):
        await provider.send_sms(sms(n))
    assert [r["message_id"] for r in read_outbox(tmp_path, limit=3)] == ["m-4", "m-3", "m-2"]
    assert read_outbox(tmp_path / "missing") == []


async def test_concurrent_appends_in_one_process(tmp_path: Path) -> None:
    provider = ConsoleSmsProvider(tmp_path)
    long_text = "é" * 5000  # long lines are where interleaving would show
    await asyncio.gather(*(provider.send_sms(sms(n, long_text)) for n in range(200)))
    lines = (tmp_path / OUTBOX_FILE).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 200
    assert {json.loads(line)["message_id"] for line in lines} == {f"m-{n}" for n in range(200)}


WRITER = """
import asyncio, sys
from pathlib import Path
from providers.base import SmsRequest
from providers.console import ConsoleSmsProvider

async def main():
    provider = ConsoleSmsProvider(Path(sys.argv[1]))
    for n in range(150):
        await provider.send_sms(SmsRequest(f"{sys.argv[2]}-{n}", "+33600000000", "CCAS",
                                           "x" * 20000, unicode=False))

asyncio.run(main())
"""


def test_concurrent_appends_across_processes(tmp_path: Path) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), name], cwd=ROOT)
        for name in ("a", "b", "c")
    ]
    assert [p.wait(timeout=30) for p in procs] == [0, 0, 0]
    lines = (tmp_path / OUTBOX_FILE).read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]  # every line whole
    assert len(records) == 450
    assert len({r["message_id"] for r in records}) == 450

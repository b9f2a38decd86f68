"""Console mode can be tried end to end: a simulated reply takes the webhook's own path."""

from __future__ import annotations

from pathlib import Path

import pytest

from campaigns.cli.main import main
from campaigns.core.errors import Forbidden, Invalid
from campaigns.core.runtime import Runtime
from campaigns.models import Escalation, OptOut
from campaigns.replies.simulation import simulate_reply
from tests.escalation_support import make_person

pytestmark = pytest.mark.usefixtures("db")


async def test_a_distress_reply_reaches_urgence(runtime: Runtime) -> None:
    person = await make_person(mobile="+33612345678")
    reply = await simulate_reply(runtime, "06 12 34 56 78", "je suis tombée, venez vite")
    assert reply.person_id == person.id and reply.label == "distress"
    escalation = await Escalation.get(id=reply.escalation_id)
    assert escalation.queue == "urgence"
    assert reply.provider_message_id.startswith("simulation-")


async def test_stop_opts_the_number_out(runtime: Runtime) -> None:
    await make_person(mobile="+33612345678")
    reply = await simulate_reply(runtime, "+33612345678", "STOP")
    assert reply.label == "opt_out"
    assert await OptOut.exists(address="+33612345678", active=True)


async def test_refused_outside_console_mode_and_for_bad_input(runtime: Runtime) -> None:
    with pytest.raises(Invalid):
        await simulate_reply(runtime, "12", "merci")
    with pytest.raises(Invalid):
        await simulate_reply(runtime, "0612345678", "   ")
    runtime.settings = runtime.settings.model_copy(update={"sms_provider": "vonage"})
    with pytest.raises(Forbidden):
        await simulate_reply(runtime, "0612345678", "merci")


def test_the_command_prints_where_the_reply_went(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CAMPAIGNS_DATABASE_URL", f"sqlite://{tmp_path / 'c.db'}")
    monkeypatch.setenv("CAMPAIGNS_OUTBOX_DIR", str(tmp_path / "outbox"))
    assert main(["reply", "0612345678", "au secours"]) == 0
    out = capsys.readouterr().out
    assert "détresse -> situation n° 1" in out
    monkeypatch.setenv("CAMPAIGNS_SMS_PROVIDER", "vonage")
    monkeypatch.setenv("CAMPAIGNS_SECRET_KEY", "k" * 32)
    monkeypatch.setenv("VONAGE_SIGNATURE_SECRET", "s" * 16)
    assert main(["reply", "0612345678", "merci"]) == 2
    assert "mode console" in capsys.readouterr().err

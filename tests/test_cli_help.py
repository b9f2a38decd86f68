"""The command line speaks French: headings, descriptions and defaults of every command."""

from __future__ import annotations

from pathlib import Path

import pytest

from campaigns.cli.main import build_parser, main

ENGLISH = ("usage:", "positional arguments", "show this help", "options:\n  -h, --help  show")


def _subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)  # type: ignore[arg-type]


@pytest.mark.parametrize("command", _subcommands())
def test_every_command_has_french_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args([command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("utilisation : campaigns ")
    assert not [word for word in ENGLISH if word in text]
    # A description paragraph besides the usage and the options.
    assert len([block for block in text.split("\n\n") if block.strip()]) >= 3, text


def test_serve_shows_its_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    text = capsys.readouterr().out
    assert "(par défaut : 127.0.0.1)" in text
    assert "(par défaut : 8080)" in text


def test_errors_are_french(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["import"])
    assert done.value.code == 2
    assert "arguments obligatoires manquants" in capsys.readouterr().err


def test_serve_refuses_a_network_address_without_a_secret_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.delenv("CAMPAIGNS_SECRET_KEY", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--port", "1"]) == 2
    assert "CAMPAIGNS_SECRET_KEY" in capsys.readouterr().err

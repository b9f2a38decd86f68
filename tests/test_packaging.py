"""The production shape and the README contract: compose file, console script, CI script."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from campaigns.cli.main import build_parser

ROOT = Path(__file__).resolve().parent.parent


def _subcommands() -> set[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return set(action.choices)


def test_compose_has_the_four_services_and_their_commands_exist() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "web", "worker"} <= set(services)
    commands = _subcommands()
    for name in ("web", "worker"):
        command = services[name]["command"]
        argv = command if isinstance(command, list) else shlex.split(command)
        assert argv[0] == "campaigns", name
        assert argv[1] in commands, f"{name}: campaigns {argv[1]} does not exist"
        assert "CAMPAIGNS_DATABASE_URL" in services[name]["environment"]


def test_public_cli_contract_is_complete() -> None:
    assert {"serve", "worker", "migrate", "import", "user", "demo", "classify"} <= _subcommands()


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    head = readme[:1500]
    assert "scripts/run" in head
    assert "scripts/test" in head
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()

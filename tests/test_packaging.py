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


def test_the_wheel_carries_every_file_the_service_reads(tmp_path: Path) -> None:
    """A non-editable install (the Docker image) needs templates, static files, rules."""
    import subprocess
    import sys
    import zipfile

    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("campaigns-*.whl")
    packed = set(zipfile.ZipFile(wheel).namelist())
    needed = [
        path.relative_to(ROOT).as_posix()
        for folder in (
            "templates",
            "campaigns/web/static",
            "campaigns/rules/data",
            "campaigns/migrations",
        )
        for path in (ROOT / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    ]
    assert needed
    missing = [path for path in needed if path not in packed]
    assert not missing, f"absent from the wheel: {missing}"

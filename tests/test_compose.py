"""docker-compose.yml keeps what the README's production section promises.

The structure is read as YAML everywhere; `docker compose config` is run too where a
docker client with compose exists (this test says so when it does not).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = ("POSTGRES_PASSWORD", "CAMPAIGNS_SECRET_KEY")


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def test_every_long_running_service_is_watched_and_restarted() -> None:
    services = _compose()["services"]
    assert set(services) == {"postgres", "redis", "migrate", "web", "worker"}
    for name in ("postgres", "redis", "web", "worker"):
        assert services[name]["restart"] == "unless-stopped", name
        assert services[name]["healthcheck"]["test"], name
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["command"] == ["campaigns", "migrate"]


def test_web_and_workers_wait_for_the_one_migration() -> None:
    services = _compose()["services"]
    for name in ("web", "worker"):
        needs = services[name]["depends_on"]
        assert needs["migrate"]["condition"] == "service_completed_successfully", name
        assert needs["redis"]["condition"] == "service_healthy", name
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_secrets_are_required_with_a_message_and_env_file_is_optional() -> None:
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    for name in REQUIRED:
        assert re.search(r"\$\{" + name + r":\?[^}]*obligatoire[^}]*\}", text), name
    services = _compose()["services"]
    for name in ("migrate", "web", "worker"):
        env = services[name]["environment"]
        assert "CAMPAIGNS_SECRET_KEY" in env and "CAMPAIGNS_PUBLIC_URL" in env, name
        assert services[name]["env_file"] == [{"path": ".env", "required": False}], name


def test_the_readme_production_section_matches() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Production", 1)[1].split("\n## ", 1)[0]
    for name in (*REQUIRED, "CAMPAIGNS_PUBLIC_URL"):
        assert name in section, name
    assert "docker compose up -d" in section


def _docker_compose() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
    return [docker, "compose"] if probe.returncode == 0 else None


def test_docker_compose_refuses_to_start_without_the_secrets() -> None:
    command = _docker_compose()
    if command is None:
        pytest.skip(
            "pas de client « docker compose » sur cette machine : seule la structure "
            "du fichier est vérifiée (tests ci-dessus)"
        )
    env = {k: v for k, v in os.environ.items() if k not in REQUIRED}
    missing = subprocess.run(
        [*command, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert missing.returncode != 0
    assert "obligatoire" in missing.stderr
    env.update({"POSTGRES_PASSWORD": "p" * 16, "CAMPAIGNS_SECRET_KEY": "k" * 32})
    given = subprocess.run(
        [*command, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert given.returncode == 0, given.stderr

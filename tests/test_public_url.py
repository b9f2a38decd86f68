"""Links sent by e-mail are built from CAMPAIGNS_PUBLIC_URL, and start-up says when that URL
cannot be where the server listens."""

from __future__ import annotations

from campaigns.core.runtime import offline_runtime
from campaigns.core.settings import Settings, public_url_warning
from campaigns.escalations.alerts import link_to


def _settings(**values: str) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_alert_links_use_the_public_url() -> None:
    runtime = offline_runtime(_settings(CAMPAIGNS_PUBLIC_URL="https://ccas.example.fr/"))
    assert link_to(runtime, "urgence", 42) == "https://ccas.example.fr/situations/42"
    assert link_to(runtime, "rappel") == "https://ccas.example.fr/files/rappel"


def test_warning_when_the_public_url_names_another_port() -> None:
    default = _settings()
    assert public_url_warning(default, "127.0.0.1", 8080) is None
    warning = public_url_warning(default, "127.0.0.1", 9000)
    assert warning is not None
    assert "CAMPAIGNS_PUBLIC_URL (http://127.0.0.1:8080)" in warning
    assert "CAMPAIGNS_PUBLIC_URL=http://127.0.0.1:9000" in warning
    assert "CAMPAIGNS_PUBLIC_URL=http://127.0.0.1:9000" in (
        public_url_warning(default, "0.0.0.0", 9000) or ""
    )


def test_no_warning_for_a_public_address_or_a_matching_one() -> None:
    proxied = _settings(CAMPAIGNS_PUBLIC_URL="https://ccas.example.fr")
    assert public_url_warning(proxied, "0.0.0.0", 8080) is None
    local = _settings(CAMPAIGNS_PUBLIC_URL="http://localhost:9000")
    assert public_url_warning(local, "127.0.0.1", 9000) is None

"""The foundation: settings, migrations on both engines, tokens, health, the OpenAPI document."""

from __future__ import annotations

import pytest

from campaigns.core.settings import SettingsError, load_settings
from campaigns.models import AuditEvent, Staff


def test_bad_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPAIGNS_SEND_RATE", "vite")
    with pytest.raises(SettingsError) as err:
        load_settings(None)
    assert "CAMPAIGNS_SEND_RATE" in str(err.value)


def test_defaults_are_the_embedded_ones() -> None:
    settings = load_settings(None)
    assert settings.database_url.startswith("sqlite://")
    assert settings.redis_url is None
    assert settings.sms_provider == "console"
    assert settings.send_window == "mon-sat 09:00-19:00"


async def test_token_then_health(client, tokens) -> None:
    response = await client.post(
        "/api/v1/auth/token", json={"email": "admin@ccas.test", "password": "mot-de-passe-solide"}
    )
    assert response.status == 200
    assert (await response.json())["role"] == "admin"
    health = await client.get("/healthz")
    assert health.status == 200
    assert (await health.json())["database"] == "ok"


async def test_wrong_password_is_401_and_json(client, tokens) -> None:
    response = await client.post(
        "/api/v1/auth/token", json={"email": "admin@ccas.test", "password": "faux"}
    )
    assert response.status == 401
    assert (await response.json())["error"] == "unauthorised"


async def test_audit_events_are_append_only(db) -> None:
    staff = await Staff.create(email="x@y.z", role="admin", password_hash="h")
    from campaigns.core import audit

    event = await audit.record(audit.Actor(staff.id, staff.email), "test", "staff", staff.id)
    event.action = "changed"
    with pytest.raises(PermissionError):
        await event.save()
    with pytest.raises(PermissionError):
        await event.delete()
    assert await AuditEvent.filter(action="test").count() == 1


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CAMPAIGNS_SEND_WINDOW", "tous les jours"),
        ("CAMPAIGNS_HOLIDAYS", "XX-99"),
        ("CAMPAIGNS_TIMEZONE", "Europe/Amiens"),
        ("CAMPAIGNS_SMS_PROVIDER", "carrier-pigeon"),
        ("CAMPAIGNS_DATABASE_URL", "mysql://x"),
    ],
)
def test_each_bad_value_stops_startup_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as err:
        load_settings(None)
    assert variable in str(err.value)


def test_only_the_documented_names_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # tortoise sets TIMEZONE=UTC in the environment: it must not become the CCAS's zone.
    monkeypatch.setenv("TIMEZONE", "UTC")
    monkeypatch.setenv("SEND_RATE", "999")
    settings = load_settings(None)
    assert settings.timezone == "Europe/Paris"
    assert settings.send_rate == 30


def test_a_real_channel_requires_a_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPAIGNS_SMS_PROVIDER", "vonage")
    monkeypatch.setenv("VONAGE_SIGNATURE_SECRET", "signature")
    with pytest.raises(SettingsError) as err:
        load_settings(None)
    assert "CAMPAIGNS_SECRET_KEY" in str(err.value)
    monkeypatch.setenv("CAMPAIGNS_SECRET_KEY", "court")
    with pytest.raises(SettingsError):
        load_settings(None)
    monkeypatch.setenv("CAMPAIGNS_SECRET_KEY", "s" * 32)
    assert load_settings(None).signing_key == "s" * 32


async def test_token_endpoint_is_throttled_like_the_login_page(client, tokens) -> None:
    wrong = {"email": "admin@ccas.test", "password": "pas-le-bon-mot"}
    statuses = [(await client.post("/api/v1/auth/token", json=wrong)).status for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    right = {"email": "admin@ccas.test", "password": "mot-de-passe-solide"}
    assert (await client.post("/api/v1/auth/token", json=right)).status == 429


async def test_a_one_time_password_gets_no_api_token(client, db) -> None:
    from campaigns import staff as staff_service

    _, one_time = await staff_service.create_staff("neuf@ccas.test", "caseworker")
    response = await client.post(
        "/api/v1/auth/token", json={"email": "neuf@ccas.test", "password": one_time}
    )
    assert response.status == 403
    assert (await response.json())["error"] == "password_change_required"


def test_a_rejected_url_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPAIGNS_DATABASE_URL", "mysql://ccas:motdepasse@db/x")
    with pytest.raises(SettingsError) as err:
        load_settings(None)
    assert "CAMPAIGNS_DATABASE_URL" in str(err.value)
    assert "motdepasse" not in str(err.value)


def test_worker_tuning_errors_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPAIGNS_SEND_CONCURRENCY", "0")
    with pytest.raises(SettingsError) as err:
        load_settings(None)
    assert "CAMPAIGNS_SEND_CONCURRENCY" in str(err.value)


def test_vonage_requires_signed_webhooks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPAIGNS_SMS_PROVIDER", "vonage")
    monkeypatch.setenv("CAMPAIGNS_SECRET_KEY", "s" * 32)
    with pytest.raises(SettingsError) as err:
        load_settings(None)
    assert "VONAGE_SIGNATURE_SECRET" in str(err.value)
    monkeypatch.setenv("VONAGE_SIGNATURE_SECRET", "signature")
    assert load_settings(None).vonage_signature_secret == "signature"


def test_production_mistakes_are_named_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    from campaigns.core.settings import production_warnings

    assert production_warnings(load_settings(None)) == []  # development: nothing to say
    monkeypatch.setenv("CAMPAIGNS_SMS_PROVIDER", "vonage")
    monkeypatch.setenv("CAMPAIGNS_SECRET_KEY", "s" * 32)
    monkeypatch.setenv("VONAGE_SIGNATURE_SECRET", "signature")
    warnings = production_warnings(load_settings(None))
    assert [w.split(" ")[0] for w in warnings] == [
        "CAMPAIGNS_PUBLIC_URL",
        "aucun",
        "CAMPAIGNS_SMS_SENDER",
    ]
    monkeypatch.setenv("CAMPAIGNS_PUBLIC_URL", "https://ccas.ville.fr")
    monkeypatch.setenv("CAMPAIGNS_SMTP_HOST", "smtp.ville.fr")
    monkeypatch.setenv("CAMPAIGNS_SMS_SENDER", "33644630000")
    assert production_warnings(load_settings(None)) == []

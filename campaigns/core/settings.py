"""Typed settings, read once from the environment (and an optional `.env`) at start-up."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from campaigns.rules.queues import DEFAULT_QUEUES_SPEC, parse_queue_rules
from campaigns.rules.send_window import parse_holidays, parse_send_window


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


# Only ever used with the console provider: real channels require CAMPAIGNS_SECRET_KEY.
DEVELOPMENT_SECRET = "campaigns-development-only-secret-key-0000"


class SettingsError(Exception):
    """A configuration value is missing or malformed; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str = Field(
        default="sqlite://campaigns.db", validation_alias=_env("CAMPAIGNS_DATABASE_URL")
    )
    redis_url: str | None = Field(default=None, validation_alias=_env("CAMPAIGNS_REDIS_URL"))
    sms_provider: Literal["console", "vonage"] = Field(
        default="console", validation_alias=_env("CAMPAIGNS_SMS_PROVIDER")
    )
    email_provider: Literal["console", "smtp"] | None = Field(
        default=None, validation_alias=_env("CAMPAIGNS_EMAIL_PROVIDER")
    )
    vonage_api_key: str | None = Field(default=None, validation_alias=_env("VONAGE_API_KEY"))
    vonage_api_secret: str | None = Field(default=None, validation_alias=_env("VONAGE_API_SECRET"))
    vonage_signature_secret: str | None = Field(
        default=None, validation_alias=_env("VONAGE_SIGNATURE_SECRET")
    )
    vonage_signature_method: Literal["md5hash", "md5", "sha1", "sha256", "sha512"] = Field(
        default="md5hash", validation_alias=_env("VONAGE_SIGNATURE_METHOD")
    )
    vonage_sms_host: str | None = Field(default=None, validation_alias=_env("VONAGE_SMS_HOST"))
    vonage_ca_file: str | None = Field(default=None, validation_alias=_env("VONAGE_CA_FILE"))
    smtp_host: str | None = Field(default=None, validation_alias=_env("CAMPAIGNS_SMTP_HOST"))
    smtp_port: int = Field(default=25, ge=1, le=65535, validation_alias=_env("CAMPAIGNS_SMTP_PORT"))
    smtp_user: str | None = Field(default=None, validation_alias=_env("CAMPAIGNS_SMTP_USER"))
    smtp_password: str | None = Field(
        default=None, validation_alias=_env("CAMPAIGNS_SMTP_PASSWORD")
    )
    smtp_starttls: bool = Field(default=False, validation_alias=_env("CAMPAIGNS_SMTP_STARTTLS"))
    email_sender: str = Field(
        default="ccas@localhost", validation_alias=_env("CAMPAIGNS_EMAIL_SENDER")
    )
    secret_key: str | None = Field(default=None, validation_alias=_env("CAMPAIGNS_SECRET_KEY"))
    timezone: str = Field(default="Europe/Paris", validation_alias=_env("CAMPAIGNS_TIMEZONE"))
    send_rate: float = Field(default=30, ge=0, validation_alias=_env("CAMPAIGNS_SEND_RATE"))
    send_window: str = Field(
        default="mon-sat 09:00-19:00", validation_alias=_env("CAMPAIGNS_SEND_WINDOW")
    )
    holidays: str = Field(default="FR", validation_alias=_env("CAMPAIGNS_HOLIDAYS"))
    sms_optout_mention: str | None = Field(
        default=None, validation_alias=_env("CAMPAIGNS_SMS_OPTOUT_MENTION")
    )
    sms_sender: str = Field(default="CCAS", validation_alias=_env("CAMPAIGNS_SMS_SENDER"))
    sms_price_per_part: Decimal = Field(
        default=Decimal("0.0650"), ge=0, validation_alias=_env("CAMPAIGNS_SMS_PRICE")
    )
    public_url: str = Field(
        default="http://127.0.0.1:8080", validation_alias=_env("CAMPAIGNS_PUBLIC_URL")
    )
    ccas_name: str = Field(default="CCAS", validation_alias=_env("CAMPAIGNS_CCAS_NAME"))
    ccas_hotline: str = Field(
        default="0800 000 000", validation_alias=_env("CAMPAIGNS_CCAS_HOTLINE")
    )
    ccas_hours: str = Field(
        default="du lundi au vendredi de 9h à 17h", validation_alias=_env("CAMPAIGNS_CCAS_HOURS")
    )
    ccas_region: str = Field(default="FR", validation_alias=_env("CAMPAIGNS_REGION"))
    opening_hours: str = Field(
        default="mon-fri 09:00-17:00", validation_alias=_env("CAMPAIGNS_OPENING_HOURS")
    )
    outbox_dir: Path = Field(default=Path("outbox"), validation_alias=_env("CAMPAIGNS_OUTBOX_DIR"))
    failure_pause_threshold: float = Field(
        default=0.2, ge=0, le=1, validation_alias=_env("CAMPAIGNS_FAILURE_THRESHOLD")
    )
    batch_size: int = Field(
        default=200, ge=1, le=10_000, validation_alias=_env("CAMPAIGNS_BATCH_SIZE")
    )
    audit_retention_days: int = Field(
        default=365, ge=180, le=3650, validation_alias=_env("CAMPAIGNS_AUDIT_RETENTION_DAYS")
    )
    secure_cookies: bool = Field(default=False, validation_alias=_env("CAMPAIGNS_SECURE_COOKIES"))
    # Escalation queues' due times: "urgence=1h,rappel=24oh,triage=48h" (oh: opening hours).
    queues: str = Field(default=DEFAULT_QUEUES_SPEC, validation_alias=_env("CAMPAIGNS_QUEUES"))
    # Call campaigns: attempts before a person is "injoignable", least delay between two.
    call_max_attempts: int = Field(
        default=3, ge=1, le=10, validation_alias=_env("CAMPAIGNS_CALL_ATTEMPTS")
    )
    call_retry_hours: float = Field(
        default=2, gt=0, le=72, validation_alias=_env("CAMPAIGNS_CALL_RETRY_HOURS")
    )
    # A CCAS's own reply rules, added to the packaged ones (checked at start-up).
    reply_rules: Path | None = Field(default=None, validation_alias=_env("CAMPAIGNS_REPLY_RULES"))
    # Worker tuning. The queue name is also the prefix of every Redis key we write.
    queue_name: str = Field(
        default="campaigns:queue", min_length=1, validation_alias=_env("CAMPAIGNS_QUEUE_NAME")
    )
    send_concurrency: int = Field(
        default=16, ge=1, le=256, validation_alias=_env("CAMPAIGNS_SEND_CONCURRENCY")
    )
    # Workers sharing one run; unset: 4 with Redis, 1 in-process.
    dispatch_lanes: int | None = Field(
        default=None, ge=1, le=64, validation_alias=_env("CAMPAIGNS_DISPATCH_LANES")
    )
    worker_heartbeat: float = Field(
        default=30, ge=1, le=3600, validation_alias=_env("CAMPAIGNS_WORKER_HEARTBEAT")
    )
    max_attempts: int = Field(
        default=5, ge=1, le=50, validation_alias=_env("CAMPAIGNS_MAX_ATTEMPTS")
    )
    # Hours after which an unconfirmed message with no receipt is put to a coordinator
    # (re-send or close as not sent): receipts normally come within minutes.
    receipt_window_hours: float = Field(
        default=6, gt=0, le=24 * 30, validation_alias=_env("CAMPAIGNS_RECEIPT_WINDOW_HOURS")
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (expected e.g. Europe/Paris)") from exc
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgres://", "postgresql://", "asyncpg://")):
            raise ValueError("expected sqlite://PATH or postgres://USER@HOST:PORT/DB")
        return value

    @field_validator("send_window", "opening_hours")
    @classmethod
    def _valid_window(cls, value: str) -> str:
        parse_send_window(value)
        return value

    @field_validator("queues")
    @classmethod
    def _valid_queues(cls, value: str) -> str:
        parse_queue_rules(value)
        return value

    @field_validator("holidays")
    @classmethod
    def _valid_holidays(cls, value: str) -> str:
        parse_holidays(value)
        return value

    @model_validator(mode="after")
    def _secret_for_production(self) -> Settings:
        smtp = self.email_provider == "smtp" or (
            self.email_provider is None and self.smtp_host is not None
        )
        real_channel = self.sms_provider != "console" or smtp
        if self.secret_key is None and real_channel:
            raise ValueError(
                "CAMPAIGNS_SECRET_KEY est obligatoire dès qu'un vrai canal d'envoi est configuré "
                "(au moins 32 caractères aléatoires)"
            )
        if self.sms_provider == "vonage" and not self.vonage_signature_secret:
            # Unsigned webhooks would let anyone post a STOP that silences a person, a
            # START that lifts an opt-out, or a false distress.
            raise ValueError(
                "VONAGE_SIGNATURE_SECRET est obligatoire avec CAMPAIGNS_SMS_PROVIDER=vonage "
                "(activez les webhooks signés dans le tableau de bord Vonage)"
            )
        if self.secret_key is not None and len(self.secret_key) < 32:
            raise ValueError("CAMPAIGNS_SECRET_KEY doit compter au moins 32 caractères")
        return self

    @property
    def signing_key(self) -> str:
        """The key for sessions and links; a fixed one only in development (console provider)."""
        return self.secret_key or DEVELOPMENT_SECRET

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def production_warnings(settings: Settings) -> list[str]:
    """What is allowed but probably a mistake once real messages leave (said at start-up)."""
    if settings.sms_provider == "console":
        return []
    warnings = []
    host = urlsplit(settings.public_url).hostname or ""
    if host in {"127.0.0.1", "localhost", "::1"}:
        warnings.append(
            "CAMPAIGNS_PUBLIC_URL désigne cette machine : les liens de désabonnement et des "
            "alertes, et les webhooks Vonage, ne seront pas joignables de l'extérieur"
        )
    if not settings.smtp_host and settings.email_provider != "smtp":
        warnings.append(
            "aucun serveur SMTP (CAMPAIGNS_SMTP_HOST) : les alertes « urgence » aux travailleurs "
            "sociaux iront dans la boîte d'envoi locale, personne ne les recevra"
        )
    if not any(c.isdigit() for c in settings.sms_sender) or any(
        c.isalpha() for c in settings.sms_sender
    ):
        warnings.append(
            "CAMPAIGNS_SMS_SENDER est alphanumérique : les destinataires ne pourront pas "
            "répondre aux campagnes (un numéro virtuel Vonage est nécessaire)"
        )
    return warnings


_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def public_url_warning(settings: Settings, host: str, port: int) -> str | None:
    """A start-up warning when CAMPAIGNS_PUBLIC_URL cannot be where `serve` listens.

    Alert and unsubscribe links are built from the public URL: one naming this machine on
    another port than the one listened on leads nowhere. A public URL naming another host
    (a proxy, a domain) cannot be checked from here and is trusted.
    """
    url = urlsplit(settings.public_url)
    public_host = (url.hostname or "").lower()
    if public_host not in _LOOPBACK:
        return None
    try:
        public_port = url.port or (443 if url.scheme == "https" else 80)
    except ValueError:
        public_port = None
    if public_port == port:
        return None
    shown = f"[{host}]" if ":" in host else host
    if host in {"0.0.0.0", "::", ""}:
        shown = "127.0.0.1"
    return (
        f"CAMPAIGNS_PUBLIC_URL ({settings.public_url}) ne correspond pas à l'adresse d'écoute "
        f"(port {port}) : les liens des alertes et de désabonnement mèneront ailleurs. "
        f"Définissez CAMPAIGNS_PUBLIC_URL=http://{shown}:{port} (ou l'adresse publique du "
        "service)."
    )


def load_settings(env_file: str | Path | None = ".env") -> Settings:
    """Read and validate settings; a bad value raises SettingsError naming the variable."""
    try:
        return Settings(_env_file=env_file)
    except ValidationError as exc:
        raise settings_error(exc, Settings) from None


def settings_error(exc: ValidationError, model: type[BaseSettings]) -> SettingsError:
    """One French message naming each bad variable (and its value, unless it may be secret)."""
    lines = []
    for error in exc.errors():
        if not error["loc"]:  # a rule across several variables names them itself
            lines.append(str(error["msg"]).removeprefix("Value error, "))
            continue
        variable = _variable_name(model, str(error["loc"][0]))
        lines.append(f"{variable}: {error['msg']}{_shown_value(variable, error.get('input'))}")
    return SettingsError("Configuration invalide :\n  " + "\n  ".join(lines))


def _variable_name(model: type[BaseSettings], field: str) -> str:
    info = model.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    if isinstance(alias, str):
        return alias
    return field.upper()


def _shown_value(variable: str, value: object) -> str:
    """The rejected value, unless it may hold a secret (passwords, keys, URLs with credentials)."""
    secret_words = ("SECRET", "PASSWORD", "KEY", "URL", "USER")
    if any(word in variable for word in secret_words):
        return " (valeur masquée)"
    return f" (valeur reçue : {value!r})"

"""The composition root: a process's Runtime built from its Settings (providers, Redis, queue).

`campaigns serve` and `campaigns worker` both call `build_runtime`; it is the only place
that chooses concrete providers, the job queue and the coordination backend.
"""

from __future__ import annotations

import logging

from campaigns.core.clock import Clock, utcnow
from campaigns.core.runtime import DispatchConfig, Runtime
from campaigns.core.settings import Settings, SettingsError, production_warnings
from campaigns.dispatch.rate_limit import make_rate_limiter
from campaigns.rules.send_window import parse_send_window
from providers.base import EmailProvider, SmsProvider

__all__ = ["build_runtime", "close_runtime"]

log = logging.getLogger(__name__)


def _sms_provider(settings: Settings, concurrency: int) -> SmsProvider:
    if settings.sms_provider == "vonage":
        from providers.vonage.client import VonageSmsProvider

        if not settings.vonage_api_key or not settings.vonage_api_secret:
            raise SettingsError(
                "Configuration invalide :\n  CAMPAIGNS_SMS_PROVIDER=vonage demande "
                "VONAGE_API_KEY et VONAGE_API_SECRET"
            )
        return VonageSmsProvider(
            settings.vonage_api_key,
            settings.vonage_api_secret,
            rest_host=settings.vonage_sms_host,
            ca_file=settings.vonage_ca_file,
            max_workers=concurrency,
            timeout=10,
        )
    from providers.console import ConsoleSmsProvider

    return ConsoleSmsProvider(settings.outbox_dir)


def _email_provider(settings: Settings) -> EmailProvider:
    use_smtp = settings.email_provider == "smtp" or (
        settings.email_provider is None and settings.smtp_host
    )
    if use_smtp:
        from providers.smtp import SmtpEmailProvider

        if not settings.smtp_host:
            raise SettingsError(
                "Configuration invalide :\n  "
                "CAMPAIGNS_EMAIL_PROVIDER=smtp demande CAMPAIGNS_SMTP_HOST"
            )
        return SmtpEmailProvider(
            settings.smtp_host,
            settings.smtp_port,
            username=settings.smtp_user,
            password=settings.smtp_password,
            start_tls=settings.smtp_starttls,
            sender=settings.email_sender,
        )
    from providers.console import ConsoleEmailProvider

    return ConsoleEmailProvider(settings.outbox_dir)


async def build_runtime(settings: Settings, *, clock: Clock = utcnow) -> Runtime:
    """Everything a web or worker process needs; jobs of the in-process queue wait for start()."""
    from campaigns.core.nonce_store import MemoryNonceStore, RedisNonceStore
    from campaigns.rules.classification import ENV_VAR, RuleFileError, check_rules
    from workers.coordination import MemoryCoordination, RedisCoordination, new_worker_id

    try:
        check_rules()  # a typo in the CCAS's rule file stops start-up, not every reply job
    except RuleFileError as exc:
        raise SettingsError(f"Configuration invalide :\n  {ENV_VAR}: {exc}") from None
    for warning in production_warnings(settings):
        log.warning("configuration : %s", warning)
    runtime = Runtime(settings=settings, clock=clock)
    runtime.dispatch = DispatchConfig(
        batch_size=settings.batch_size,
        concurrency=settings.send_concurrency,
        lanes=settings.dispatch_lanes or (4 if settings.redis_url else 1),
        max_attempts=settings.max_attempts,
        heartbeat_ttl=settings.worker_heartbeat,
    )
    runtime.send_window = parse_send_window(
        settings.send_window, settings.timezone, settings.holidays
    )
    runtime.sms = _sms_provider(settings, settings.send_concurrency)
    runtime.email = _email_provider(settings)
    prefix = settings.queue_name
    worker_id = new_worker_id()
    if settings.redis_url:
        from redis.asyncio import Redis

        from workers.arq_queue import ArqQueue

        runtime.redis = Redis.from_url(settings.redis_url)
        runtime.queue = await ArqQueue.connect(settings.redis_url, settings.queue_name)
        runtime.coordination = RedisCoordination(
            runtime.redis, prefix, worker_id, settings.worker_heartbeat
        )
        runtime.nonce_store = RedisNonceStore(runtime.redis, prefix=f"{prefix}:nonce:")
    else:
        from workers.inprocess import InProcessQueue
        from workers.jobs import FUNCTIONS

        runtime.queue = InProcessQueue(FUNCTIONS, {"runtime": runtime})
        runtime.coordination = MemoryCoordination(worker_id)
        runtime.nonce_store = MemoryNonceStore()
    runtime.rate_limiter = make_rate_limiter(
        settings.send_rate, redis=runtime.redis, key=f"{prefix}:rate:sms"
    )
    return runtime


async def close_runtime(runtime: Runtime) -> None:
    if runtime.queue is not None:
        await runtime.queue.close()
    stop = getattr(runtime.coordination, "stop", None)
    if stop is not None:
        await stop()
    for provider in (runtime.sms, runtime.email):
        if provider is not None:
            await provider.close()
    if runtime.redis is not None:
        await runtime.redis.aclose()

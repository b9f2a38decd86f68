"""The composition root: a process's Runtime built from its Settings (providers, Redis, queue).

`campaigns serve` and `campaigns worker` both call `build_runtime`; it is the only place
that chooses concrete providers, the job queue and the coordination backend.
"""

from __future__ import annotations

import logging
from typing import Any

from redis.asyncio import Redis

from campaigns.core.clock import Clock, utcnow
from campaigns.core.jobs import JobQueue
from campaigns.core.nonce_store import MemoryNonceStore, NonceStore, RedisNonceStore
from campaigns.core.process_state import ProcessState
from campaigns.core.runtime import Coordination, DispatchConfig, Runtime
from campaigns.core.settings import Settings, SettingsError, production_warnings
from campaigns.dispatch.rate_limit import make_rate_limiter
from campaigns.rules.classification import RuleFileError, check_rules
from campaigns.rules.send_window import parse_send_window
from providers.base import EmailProvider, SmsProvider
from workers.arq_queue import ArqQueue
from workers.coordination import MemoryCoordination, RedisCoordination, new_worker_id
from workers.inprocess import InProcessQueue
from workers.jobs import FUNCTIONS

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


async def build_runtime(
    settings: Settings, *, clock: Clock = utcnow, state: ProcessState | None = None
) -> Runtime:
    """Everything a web or worker process needs; jobs of the in-process queue wait for start().

    `state`: what the process already holds (a worker makes it before it can connect).
    """
    try:
        # A typo in the CCAS's rule file stops start-up, not every reply job.
        check_rules(settings.reply_rules)
    except RuleFileError as exc:
        raise SettingsError(f"Configuration invalide :\n  CAMPAIGNS_REPLY_RULES: {exc}") from None
    for warning in production_warnings(settings):
        log.warning("configuration : %s", warning)
    dispatch = DispatchConfig(
        batch_size=settings.batch_size,
        concurrency=settings.send_concurrency,
        lanes=settings.dispatch_lanes or (4 if settings.redis_url else 1),
        max_attempts=settings.max_attempts,
        heartbeat_ttl=settings.worker_heartbeat,
    )
    send_window = parse_send_window(settings.send_window, settings.timezone, settings.holidays)
    sms = _sms_provider(settings, settings.send_concurrency)
    email = _email_provider(settings)
    prefix = settings.queue_name
    worker_id = new_worker_id()
    redis: Redis | None = None
    queue: JobQueue
    coordination: Coordination
    nonce_store: NonceStore
    # The in-process queue hands its jobs the Runtime it belongs to, known once built.
    jobs_ctx: dict[str, Any] = {}
    if settings.redis_url:
        redis = Redis.from_url(settings.redis_url)
        queue = await ArqQueue.connect(settings.redis_url, settings.queue_name)
        coordination = RedisCoordination(redis, prefix, worker_id, settings.worker_heartbeat)
        nonce_store = RedisNonceStore(redis, prefix=f"{prefix}:nonce:")
    else:
        queue = InProcessQueue(FUNCTIONS, jobs_ctx)
        coordination = MemoryCoordination(worker_id)
        nonce_store = MemoryNonceStore()
    runtime = Runtime(
        settings=settings,
        clock=clock,
        queue=queue,
        sms=sms,
        email=email,
        rate_limiter=make_rate_limiter(settings.send_rate, redis=redis, key=f"{prefix}:rate:sms"),
        send_window=send_window,
        nonce_store=nonce_store,
        coordination=coordination,
        redis=redis,
        dispatch=dispatch,
        state=state if state is not None else ProcessState(),
    )
    jobs_ctx["runtime"] = runtime
    return runtime


async def close_runtime(runtime: Runtime) -> None:
    await runtime.queue.close()
    await runtime.coordination.stop()
    for provider in (runtime.sms, runtime.email):
        await provider.close()
    if runtime.redis is not None:
        await runtime.redis.aclose()

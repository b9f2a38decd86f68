"""Building a process's Runtime from settings: providers, Redis, queue. One place, used by serve and worker."""

from __future__ import annotations

from campaigns.runtime import Runtime
from campaigns.settings import Settings


async def build_runtime(settings: Settings) -> Runtime:
    from providers.console import ConsoleEmailProvider, ConsoleSmsProvider

    runtime = Runtime(settings=settings)
    runtime.sms = ConsoleSmsProvider(settings.outbox_dir)
    runtime.email = ConsoleEmailProvider(settings.outbox_dir)
    return runtime


async def close_runtime(runtime: Runtime) -> None:
    for provider in (runtime.sms, runtime.email):
        if provider is not None:
            await provider.close()
    if runtime.queue is not None:
        await runtime.queue.close()
    if runtime.redis is not None:
        await runtime.redis.aclose()

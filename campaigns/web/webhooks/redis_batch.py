"""A batch's Redis work in one round trip: its nonces and its `process_reply` jobs.

arq's own `enqueue_job` costs three round trips per job (WATCH, EXISTS, MULTI/EXEC).
With arq, a batch's jobs are written by one Lua script doing what `enqueue_job` does
for each (skip a job whose id is queued, running or kept as a result; else store the job
and add it to the queue), sent in the same pipeline as the nonces when both live on the
same Redis server. Any other queue gets its jobs one by one, concurrently.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Sequence
from typing import Any, cast

from arq.constants import expires_extra_ms, job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from redis.exceptions import ConnectionError as RedisConnectionError

from campaigns.core.nonce_store import NonceStore, RedisNonceStore
from campaigns.core.runtime import Runtime

__all__ = ["Job", "remember_and_enqueue"]

Job = tuple[str, tuple[Any, ...], str]  # function, args, job id (as given to JobQueue)

_ENQUEUE = """
local added = {}
for i = 1, (#KEYS - 1) / 2 do
  if redis.call('EXISTS', KEYS[2 * i], KEYS[2 * i + 1]) == 0 then
    redis.call('PSETEX', KEYS[2 * i], ARGV[2], ARGV[2 * i + 2])
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2 * i + 1])
    added[#added + 1] = 1
  else
    added[#added + 1] = 0
  end
end
return added
"""


def _arq_pool(runtime: Runtime) -> Any | None:
    """The arq pool behind the runtime's queue (workers.arq_queue.ArqQueue), if that is it."""
    pool = getattr(runtime.queue, "pool", None)
    if pool is None or not hasattr(pool, "job_serializer"):
        return None
    return pool


def _same_server(a: Any, b: Any) -> bool:
    keys = ("host", "port", "db", "path", "username")
    ka, kb = a.connection_pool.connection_kwargs, b.connection_pool.connection_kwargs
    return all(ka.get(k) == kb.get(k) for k in keys)


def _arq_commands(pool: Any, queue_name: str, jobs: Sequence[Job]) -> tuple[list[str], list[Any]]:
    now_ms = int(time.time() * 1000)
    keys: list[str] = [queue_name]
    argv: list[Any] = [now_ms, pool.expires_extra_ms or expires_extra_ms]
    for function, args, job_id in jobs:
        # Scoped by queue as workers.arq_queue.ArqQueue.enqueue scopes it.
        full_id = f"{queue_name}:{job_id}"
        keys += [job_key_prefix + full_id, result_key_prefix + full_id]
        data = serialize_job(function, args, {}, None, now_ms, serializer=pool.job_serializer)
        argv += [full_id, data]
    return keys, argv


async def remember_and_enqueue(
    runtime: Runtime, store: NonceStore, nonces: Sequence[tuple[str, str]], jobs: Sequence[Job]
) -> list[str | None]:
    """Record the batch's nonces and queue its jobs; for each nonce, the fingerprint it was
    first recorded with (None when new). Raises if Redis fails: the caller decides."""
    pool = _arq_pool(runtime)
    queue_name = getattr(runtime.queue, "queue_name", None)
    if pool is None or queue_name is None:
        found, _ = await asyncio.gather(store.remember(nonces), _enqueue_each(runtime, jobs))
        return found
    shared = isinstance(store, RedisNonceStore) and _same_server(store.redis, pool)
    if shared and nonces and not jobs:
        # Nonces only (a batch of receipts): their one script sent as a plain command,
        # without a pipeline's machinery (about a third less CPU per batch, measured).
        assert isinstance(store, RedisNonceStore)
        command = _Captured()
        store.add_to(cast(Any, command), nonces)
        return RedisNonceStore.read(await _eval_kept(store.redis, command.args))
    if not shared and nonces:
        found, _ = await asyncio.gather(store.remember(nonces), _run_script(pool, queue_name, jobs))
        return found
    async with pool.pipeline(transaction=False) as pipe:
        if shared and nonces:
            assert isinstance(store, RedisNonceStore)
            store.add_to(pipe, nonces)
        if jobs:
            # EVAL with the text rather than a registered Script: a pipeline holding a
            # Script checks SCRIPT EXISTS first, one more round trip.
            keys, argv = _arq_commands(pool, queue_name, jobs)
            pipe.eval(_ENQUEUE, len(keys), *keys, *argv)
        results = await pipe.execute()
    return RedisNonceStore.read(results[0]) if shared and nonces else []


# Per client, one connection kept out of its pool for the batches' nonce scripts: taking
# a connection from the pool checks it for unread data first (a non-blocking read under a
# timeout), which cost a tenth of a receipt request's CPU. Dies with its client.
_KEPT: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _kept(redis: Any) -> Any:
    kept = _KEPT.get(redis)
    if kept is None:
        # A client on one connection of the same pool; it reconnects after an outage.
        kept = _KEPT[redis] = redis.client()
    return kept


async def _eval_kept(redis: Any, args: tuple[Any, ...]) -> Any:
    kept = _kept(redis)
    try:
        return await kept.eval(*args)
    except RedisConnectionError:
        # Unlike the pool, the kept connection is not checked before use: one the server
        # closed (a restart, an idle timeout) fails once, then reconnects. Sent again: a
        # nonce the first try may have set holds this very request's fingerprint, which
        # reads as the same request, not as a replay.
        return await kept.eval(*args)


class _Captured:
    """Stands for a pipeline to catch the one EVAL a nonce store queues on it."""

    args: tuple[Any, ...] = ()

    def eval(self, *args: Any) -> None:
        self.args = args


async def _run_script(pool: Any, queue_name: str, jobs: Sequence[Job]) -> None:
    if jobs:
        keys, argv = _arq_commands(pool, queue_name, jobs)
        await pool.eval(_ENQUEUE, len(keys), *keys, *argv)


async def _enqueue_each(runtime: Runtime, jobs: Sequence[Job]) -> None:
    if not jobs:
        return
    queue = runtime.queue
    await asyncio.gather(*(queue.enqueue(f, *args, job_id=job_id) for f, args, job_id in jobs))

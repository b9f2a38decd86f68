"""Benchmark of the inbound SMS webhook: signed Vonage requests over loopback, beside a ceiling.

Run: `python bench/inbound_bench.py [--requests 20000] [--concurrency 32]`.
It needs PostgreSQL (CAMPAIGNS_BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432,
a database of its own is created then dropped) and Redis (CAMPAIGNS_BENCH_REDIS_URL, default
redis://127.0.0.1:6379/14: nonces and the queued `process_reply` jobs, under keys of its own,
deleted at the end; no worker consumes them, so processing never slows the webhook).

The real application (create_app, the real middlewares and handler, tortoise on asyncpg)
runs in a child process on a real port; so does the ceiling, a bare aiohttp handler that
reads the body and answers 204. The load generator, this process, sends the same
pre-signed requests (HMAC-SHA256, a third each as GET query, POST form and POST JSON;
about 10 % of the messages in 2 or 3 parts, their parts out of order) to each, with
one aiohttp client at a fixed concurrency, and reports requests/s, replies/s, p50, p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import asyncpg
from yarl import URL

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_support import cpu_by_role, cpu_report, emit_result, load_average  # noqa: E402

from providers.vonage.signatures import sign_params  # noqa: E402

BASE_URL = os.environ.get("CAMPAIGNS_BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("CAMPAIGNS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
SECRET = "bench-signature-secret"
METHOD = "sha256"
PATH = "/webhooks/vonage/inbound"
DEV_SET = Path(__file__).resolve().parents[1] / "tests" / "data" / "replies_dev.csv"
FALLBACK_TEXTS = ("STOP", "Oui rappelez-moi svp", "merci beaucoup", "je suis tombée hier")


# --- payloads ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One pre-encoded HTTP request, so the client spends nothing on encoding or signing."""

    method: str
    target: str  # path and query string
    body: bytes | None
    content_type: str | None


def _texts() -> list[str]:
    if not DEV_SET.exists():
        return list(FALLBACK_TEXTS)
    lines = DEV_SET.read_text("utf-8").splitlines()[1:]
    return [line.split(";", 1)[1] for line in lines if ";" in line] or list(FALLBACK_TEXTS)


def _messages(count: int, rng: random.Random, run: str) -> list[list[dict[str, str]]]:
    """`count` inbound SMS as Vonage sends them: each a list of its parts (one for most)."""
    texts = _texts()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    messages = []
    for index in range(count):
        msisdn = f"336{rng.randrange(10**8):08d}"
        common = {"msisdn": msisdn, "to": "33644630000", "api-key": "bench"}
        common["message-timestamp"] = stamp
        if rng.random() >= 0.10:
            text = rng.choice(texts)
            messages.append(
                [
                    {
                        **common,
                        "messageId": f"{run}S{index:09X}",
                        "type": "text",
                        "text": text,
                        "keyword": text.split(" ")[0].upper(),
                    }
                ]
            )
            continue
        total = rng.choice((2, 3))
        long_text = ""
        while len(long_text) <= 153 * (total - 1):
            long_text += rng.choice(texts) + " "
        chunks = [long_text[i * 153 : (i + 1) * 153] for i in range(total - 1)]
        chunks.append(long_text[153 * (total - 1) :])
        ref = str(rng.randrange(256))
        parts = [
            {
                **common,
                "messageId": f"{run}P{index:07X}{number:02X}",
                "type": "text",
                "text": chunk,
                "keyword": chunk.split(" ")[0].upper(),
                "concat": "true",
                "concat-ref": ref,
                "concat-total": str(total),
                "concat-part": str(number),
            }
            for number, chunk in enumerate(chunks, start=1)
        ]
        rng.shuffle(parts)  # parts arrive in any order
        messages.append(parts)
    return messages


def _encode(params: dict[str, str], form: str) -> Request:
    if form == "get":
        return Request("GET", f"{PATH}?{urlencode(params)}", None, None)
    if form == "form":
        body = urlencode(params).encode()
        return Request("POST", PATH, body, "application/x-www-form-urlencoded")
    return Request("POST", PATH, json.dumps(params).encode(), "application/json")


def build_requests(total_requests: int, seed: int, run: str) -> tuple[list[Request], int, int]:
    """Signed requests (about `total_requests`), the number of replies and of multi-part SMS."""
    rng = random.Random(seed)
    messages: list[list[dict[str, str]]] = []
    while sum(len(m) for m in messages) < total_requests:
        messages += _messages(500, rng, f"{run}{len(messages):06X}")
    now = int(time.time())
    requests = []
    for parts in messages:
        for params in parts:
            signed = sign_params(params, SECRET, METHOD, now, uuid.uuid4().hex)
            requests.append(_encode(signed, rng.choice(("get", "form", "json"))))
    multi = sum(1 for m in messages if len(m) > 1)
    return requests, len(messages), multi


# --- load ----------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    requests: int
    elapsed: float
    latencies: list[float]
    errors: int
    replies: int
    server_cpu: float  # seconds of CPU (user + system) the server process spent in the run

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed

    @property
    def replies_per_s(self) -> float:
        return self.replies / self.elapsed

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def hammer(
    base: str, requests: list[Request], concurrency: int
) -> tuple[float, list[float], int]:
    """Send every request with `concurrency` in flight; return elapsed, latencies, errors."""
    prepared = [
        (r.method, URL(base + r.target, encoded=True), r.body, r.content_type) for r in requests
    ]
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    latencies: list[float] = []
    errors = 0
    cursor = iter(prepared)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:

        async def client() -> None:
            nonlocal errors
            for method, url, body, content_type in cursor:
                headers = {"Content-Type": content_type} if content_type else None
                began = time.perf_counter()
                async with session.request(method, url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status >= 300:
                        errors += 1
                latencies.append(time.perf_counter() - began)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return elapsed, latencies, errors


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(kind: str, port: int, *extra: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, __file__, "--serve", kind, "--port", str(port), *extra]
    return subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env})


async def wait_ready(port: int, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError(f"le serveur du port {port} ne répond pas")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def measure(
    name: str,
    kind: str,
    extra: list[str],
    env: dict[str, str],
    warmup: list[Request],
    requests: list[Request],
    concurrency: int,
    replies: int,
) -> Result:
    port = free_port()
    process = start_server(kind, port, *extra, env=env)
    try:
        await wait_ready(port)
        base = f"http://127.0.0.1:{port}"
        await hammer(base, warmup, concurrency)
        roles = {"serveur": [process.pid], "client": [os.getpid()]}
        cpu_before = cpu_by_role(roles, redis=True)
        elapsed, latencies, errors = await hammer(base, requests, concurrency)
        cpu_after = cpu_by_role(roles, redis=True)
        server_cpu = cpu_after["serveur"] - cpu_before["serveur"]
    finally:
        stop(process)
    machine_ms = (os.cpu_count() or 1) * elapsed * 1000 / len(requests)
    print(
        f"{name} : CPU ms par requête : {cpu_report(cpu_before, cpu_after, len(requests))} "
        f"(temps machine : {machine_ms:.2f} ms sur {os.cpu_count()} cœurs)",
        flush=True,
    )
    return Result(name, len(requests), elapsed, latencies, errors, replies, server_cpu)


# --- the servers (child processes) -----------------------------------------------------------


async def serve_app(port: int, db_url: str) -> None:
    """The application as `campaigns serve` builds it with Redis (CAMPAIGNS_QUEUE_NAME set)."""
    from aiohttp import web

    from campaigns.core.db import close_db, init_db
    from campaigns.core.settings import Settings
    from campaigns.web.app import create_app
    from campaigns.web.webhooks.commit import BATCHER
    from workers.runtime import build_runtime, close_runtime

    settings = Settings(
        CAMPAIGNS_DATABASE_URL=db_url,
        CAMPAIGNS_REDIS_URL=REDIS_URL,
        VONAGE_SIGNATURE_SECRET=SECRET,
        VONAGE_SIGNATURE_METHOD=METHOD,
        CAMPAIGNS_SECRET_KEY="b" * 32,
        CAMPAIGNS_OUTBOX_DIR="/tmp/campaigns-bench-outbox",
        _env_file=None,  # type: ignore[call-arg]
    )
    await init_db(db_url)
    runtime = await build_runtime(settings)
    app = create_app(runtime)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await asyncio.Event().wait()
    finally:
        if (batcher := app.get(BATCHER)) is not None and batcher.batches:
            average, ms = batcher.items / batcher.batches, batcher.writing_seconds * 1000
            print(f"groupage : {batcher.items:,} requêtes en {batcher.batches:,} lots "
                  f"(moyenne {average:.1f}, max {batcher.largest}, écriture moyenne "
                  f"{ms / batcher.batches:.1f} ms)", flush=True)  # fmt: skip
        await runner.cleanup()
        await close_runtime(runtime)
        await close_db()


async def serve_bare(port: int) -> None:
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=204)

    app = web.Application()
    # Any path: the receipts benchmark measures its ceiling with this server too.
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


def run_server(args: argparse.Namespace) -> None:
    import signal

    if profile_to := os.environ.get("CAMPAIGNS_BENCH_PROFILE"):  # the server's, for cProfile
        import atexit
        import cProfile

        (profiler := cProfile.Profile()).enable()
        atexit.register(lambda: (profiler.disable(), profiler.dump_stats(profile_to)))
    loop = asyncio.new_event_loop()
    main_task = loop.create_task(
        serve_app(args.port, args.db) if args.serve == "app" else serve_bare(args.port)
    )
    loop.add_signal_handler(signal.SIGTERM, main_task.cancel)
    try:
        loop.run_until_complete(main_task)
    except asyncio.CancelledError:
        pass
    finally:
        loop.close()


# --- orchestration -----------------------------------------------------------------------------


async def create_database(name: str) -> str:
    from campaigns.core.db import migrate

    conn = await asyncpg.connect(BASE_URL.replace("postgres://", "postgresql://") + "/postgres")
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = f"{BASE_URL}/{name}"
    await migrate(url)
    return url


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(BASE_URL.replace("postgres://", "postgresql://") + "/postgres")
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


async def check_stored(db_url: str, queue_name: str) -> tuple[int, int, int, int]:
    """Replies stored (and complete), parts left unassembled, jobs queued."""
    from redis.asyncio import Redis

    conn = await asyncpg.connect(db_url.replace("postgres://", "postgresql://"))
    replies = await conn.fetchval("SELECT count(*) FROM reply")
    complete = await conn.fetchval("SELECT count(*) FROM reply WHERE complete")
    waiting = await conn.fetchval("SELECT count(*) FROM inbound_part WHERE NOT assembled")
    await conn.close()
    redis = Redis.from_url(REDIS_URL)
    queued = await redis.zcard(queue_name)
    await redis.aclose()
    return replies, complete, waiting, queued


async def cleanup_redis(queue_name: str) -> None:
    """Delete every key the run wrote: all carry its queue name (queue, jobs, nonces)."""
    from redis.asyncio import Redis

    redis = Redis.from_url(REDIS_URL)
    keys = [key async for key in redis.scan_iter(match=f"*{queue_name}*", count=1000)]
    for start in range(0, len(keys), 1000):
        await redis.delete(*keys[start : start + 1000])
    await redis.aclose()


def print_report(results: list[Result], total_replies: int, multi: int, args: Any) -> None:
    print(
        f"\nWebhook entrant : {results[0].requests:,} requêtes signées HMAC-SHA256 "
        f"({total_replies:,} SMS dont {multi:,} en 2-3 parties), concurrence {args.concurrency}, "
        "GET/formulaire/JSON mélangés, PostgreSQL + Redis, serveur et client dans deux processus"
    )
    header = ("requêtes/s", "réponses/s", "p50 ms", "p99 ms", "CPU ms/req", "erreurs")
    print(f"{'':28} " + " ".join(f"{h:>11}" for h in header))
    for result in results:
        print(
            f"{result.name:28} {result.rps:11,.0f} {result.replies_per_s:11,.0f} "
            f"{result.percentile(0.50):11.2f} {result.percentile(0.99):11.2f} "
            f"{result.server_cpu * 1000 / result.requests:11.3f} {result.errors:11}"
        )
    bare, app = results
    ratio = app.rps / bare.rps
    print(f"rapport au plafond (requêtes/s) : {ratio:.2f}")
    met = app.replies_per_s >= 2_500 and app.percentile(0.99) < 50 and ratio >= 0.2
    print(
        "cible ≥ 2 500 réponses/s, p99 < 50 ms et ≥ 0,2 du plafond : "
        f"{'atteinte' if met else 'NON atteinte'}"
    )


async def main(args: argparse.Namespace) -> int:
    print(f"charge avant : {load_average()} (2 cœurs)", flush=True)
    run = uuid.uuid4().hex[:6].upper()
    database = f"campaigns_bench_inbound_{os.getpid()}"
    queue_name = f"bench-inbound-{run}"
    warmup, _, _ = build_requests(args.warmup, args.seed + 1, "W" + run)
    requests, total_replies, multi = build_requests(args.requests, args.seed, run)
    db_url = await create_database(database)
    try:
        bare = await measure(
            "aiohttp nu (204, plafond)",
            "bare",
            [],
            {},
            warmup,
            requests,
            args.concurrency,
            total_replies,
        )
        app = await measure(
            "webhook campaigns",
            "app",
            ["--db", db_url],
            {"CAMPAIGNS_QUEUE_NAME": queue_name},
            warmup,
            requests,
            args.concurrency,
            total_replies,
        )
        print_report([bare, app], total_replies, multi, args)
        print(f"charge après : {load_average()}", flush=True)
        replies, complete, waiting, queued = await check_stored(db_url, queue_name)
        warm_replies = replies - total_replies
        print(
            f"vérification : {replies:,} réponses en base ({warm_replies:,} de l'échauffement), "
            f"{complete:,} complètes, {waiting} parties en attente, {queued:,} tâches en file"
        )
        # The last line, for bench/run_all.py.
        emit_result(
            [
                {"name": "inbound webhook requests/s", "value": app.rps, "unit": "req/s",
                 "ceiling": bare.rps},
                {"name": "inbound webhook replies/s", "value": app.replies_per_s,
                 "unit": "replies/s"},
                {"name": "inbound webhook p99", "value": app.percentile(0.99), "unit": "ms"},
            ]
        )  # fmt: skip
        return 0 if app.errors == 0 and waiting == 0 else 1
    finally:
        await cleanup_redis(queue_name)
        if not args.keep:
            await drop_database(database)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="5 000 requêtes")
    parser.add_argument("--warmup", type=int, default=1_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--keep", action="store_true", help="ne pas supprimer la base")
    parser.add_argument("--serve", choices=("app", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.requests = min(args.requests, 5_000)
    return args


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.serve:
        run_server(arguments)
    else:
        sys.exit(asyncio.run(main(arguments)))

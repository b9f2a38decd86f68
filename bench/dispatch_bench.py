"""Benchmark of dispatch: a 50,000-recipient SMS campaign sent by two `campaigns worker` processes.

Run: `python bench/dispatch_bench.py [--people 50000] [--workers 2] [--concurrency 24]`.
Needs PostgreSQL (CAMPAIGNS_BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432;
a database of its own, named after the process id, is created, then dropped) and Redis
(CAMPAIGNS_BENCH_REDIS_URL, default redis://127.0.0.1:6379/14; keys under a queue name
of its own, deleted at the end).

The Vonage emulator runs in its own process (TLS, no receipts). First a plain client
measures the ceiling: the same SDK (`vonage`, `client.sms.send`), one client per thread
in a pool of threads, straight to the emulator, in as many processes as there are
workers (`--workers`) with as many threads as each worker has sends in flight
(`--concurrency`); the one-process figure is printed beside it. Then the campaign is
launched (the real `campaign_launch.launch`: audience snapshot and one rendered Message
per person, timed) and the workers send it: rate limit off, window `always`. Printed:
launch time, the end-to-end rate (launch's enqueue to the last message recorded), the
ceiling, the ratio. Targets (issue 3): launch under 10 s; end to end at least 60 % of
the ceiling and at least 300 messages/s.

With receipts (`--receipts`, or `--compare` for both runs one after the other, without
then with, printing both figures and their ratio): a web process (`campaigns serve`)
takes the delivery receipts the emulator posts (signed, one per part, 50 ms after the
send), stores them and has the workers apply them in bulk, as in production. The time
is still launch to the last message recorded; the receipts' own end (every message
delivered) is printed beside it. Target (issue 10): with receipts at most 10 % slower.
Each run also prints the CPU it cost, per message, by process: workers, emulator, web
and PostgreSQL (every database of the server: other sessions' work counts there), which
says what the receipts cost and whom.
The second campaign goes to the same people: its message table is twice as large.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_support import (  # noqa: E402
    BASE_URL,
    admin,
    copy_people,
    cpu_by_role,
    cpu_report,
    emit_result,
    load_average,
)

from campaigns.campaign import launch as campaign_launch  # noqa: E402
from campaigns.campaign import lifecycle as campaign_service  # noqa: E402
from campaigns.core.audit import Actor  # noqa: E402
from campaigns.core.db import close_db, init_db, migrate  # noqa: E402
from campaigns.core.runtime import Runtime, offline_runtime  # noqa: E402
from campaigns.core.settings import Settings  # noqa: E402
from campaigns.messages.template_store import TemplateContent, create_template  # noqa: E402
from campaigns.models import Audience, Message  # noqa: E402
from workers.arq_queue import ArqQueue  # noqa: E402

REDIS_URL = os.environ.get("CAMPAIGNS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
# One database per run: two runs at once must not drop each other's database.
DATABASE = f"campaigns_dispatch_bench_{os.getpid()}"
KEY, SECRET = "bench-key", "bench-secret"
SIGNING = "bench-signature-secret"
BODY = (
    "{{ ccas.name }} : Bonjour {{ person.civility }} {{ person.last_name }}, nous prenons de "
    "vos nouvelles. Appelez-nous au {{ ccas.hotline }}."
)


async def _populate(url: str, people: int) -> None:
    """Every person with a mobile: the bench measures launch and dispatch, not the import."""
    await copy_people(
        url, people, seed=7, source="bench", phones=lambda i, _rng: (f"+336{i:08d}", None)
    )


def _start_emulator(cert_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    # Port 0: the system picks a free one and the emulator prints it (rest_host=...); a
    # random port of our own choosing was sometimes taken already.
    command = [sys.executable, "-m", "providers.emulator", "--port", "0"]
    command += ["--cert-dir", str(cert_dir), "--api-key", KEY, "--api-secret", SECRET]
    command += ["--dlr-concurrency", "64"]  # posters ready for the run with receipts
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log.open("wb"),
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    rest_host = ca_file = ""
    assert process.stdout is not None
    while not (rest_host and ca_file):
        line = process.stdout.readline().decode()
        if not line:
            raise RuntimeError(f"the emulator did not start: {log.read_text()[-2000:]}")
        if line.startswith("rest_host="):
            rest_host = line.strip().split("=", 1)[1]
        elif line.startswith("ca_file="):
            ca_file = line.strip().split("=", 1)[1]
    return process, rest_host, ca_file


def _send_share(
    rest_host: str, ca_file: str, first: int, count: int, threads: int, barrier: Any = None
) -> tuple[float, float]:
    """Send `count` SMS with the plain SDK, one client per thread; the timed span."""
    from vonage import Auth, HttpClientOptions, Vonage
    from vonage_sms import SmsMessage

    os.environ["REQUESTS_CA_BUNDLE"] = ca_file
    local = threading.local()

    def send(i: int) -> None:
        client = getattr(local, "client", None)
        if client is None:
            options = HttpClientOptions(rest_host=rest_host, api_host=rest_host, timeout=10)
            client = local.client = Vonage(Auth(KEY, SECRET), options)
        client.sms.send(
            SmsMessage(
                to=f"3370{i:07d}",
                from_="CCAS",
                text="Plafond : un message comme ceux de la campagne, pour mesurer.",
                client_ref=f"ceiling-{i}",
            )
        )

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, range(first, first + min(200, count))))  # clients warmed up
        if barrier is not None:
            barrier.wait()  # every process starts its timed part together
        started = time.perf_counter()
        list(pool.map(send, range(first, first + count)))
        ended = time.perf_counter()
    return started, ended


def _ceiling_process(
    rest_host: str, ca_file: str, first: int, count: int, threads: int, barrier: Any, results: Any
) -> None:
    results.put(_send_share(rest_host, ca_file, first, count, threads, barrier))


def measure_ceiling(
    rest_host: str, ca_file: str, count: int, threads: int, processes: int
) -> float:
    """SMS/s of the plain SDK against the emulator, in `processes` processes of `threads` threads.

    The workers send from `--workers` processes, each with its own GIL; a ceiling measured
    in one process is bound by one GIL and comes out below what the workers reach.
    """
    if processes == 1:
        started, ended = _send_share(rest_host, ca_file, 0, count, threads)
        return count / (ended - started)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results = context.Queue()
    share = count // processes
    children = [
        context.Process(
            target=_ceiling_process,
            args=(rest_host, ca_file, i * share, share, threads, barrier, results),
        )
        for i in range(processes)
    ]
    for child in children:
        child.start()
    spans = [results.get(timeout=600) for _ in children]
    for child in children:
        child.join()
    # perf_counter is CLOCK_MONOTONIC on Linux: comparable between processes.
    return share * processes / (max(e for _, e in spans) - min(s for s, _ in spans))


def _worker_env(args: argparse.Namespace, url: str, queue: str, rest_host: str, ca: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMPAIGNS_", "VONAGE_"))}
    env.pop("REQUESTS_CA_BUNDLE", None)
    env.update(
        PYTHONPATH=str(ROOT),
        CAMPAIGNS_DATABASE_URL=url,
        CAMPAIGNS_REDIS_URL=REDIS_URL,
        CAMPAIGNS_QUEUE_NAME=queue,
        CAMPAIGNS_SMS_PROVIDER="vonage",
        VONAGE_SIGNATURE_SECRET=SIGNING,
        VONAGE_SIGNATURE_METHOD="sha256",
        VONAGE_API_KEY=KEY,
        VONAGE_API_SECRET=SECRET,
        VONAGE_SMS_HOST=rest_host,
        VONAGE_CA_FILE=ca,
        CAMPAIGNS_SEND_RATE="0",
        CAMPAIGNS_SEND_WINDOW="always",
        CAMPAIGNS_BATCH_SIZE=str(args.batch),
        CAMPAIGNS_SEND_CONCURRENCY=str(args.concurrency),
        CAMPAIGNS_DISPATCH_LANES=str(args.workers),
        CAMPAIGNS_SECRET_KEY="k" * 32,
    )
    return env


async def _remaining(
    url: str, campaign_id: int, statuses: tuple[str, ...] = ("queued", "sending")
) -> int:
    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://"))
    try:
        return await conn.fetchval(
            "SELECT count(*) FROM message WHERE campaign_id=$1 AND status = ANY($2::text[])",
            campaign_id,
            list(statuses),
        )
    finally:
        await conn.close()


async def _cleanup_redis(queue: str) -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(REDIS_URL)
    keys = [k async for k in redis.scan_iter(match=f"{queue}*", count=1000)]
    keys += [k async for k in redis.scan_iter(match=f"arq:*:{queue}:*", count=1000)]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


def _receipts_config(web_url: str) -> dict[str, Any]:
    return {
        "dlr_url": f"{web_url}/webhooks/vonage/status",
        "dlr_format": "form",
        "dlr_signature_secret": SIGNING,
        "dlr_signature_method": "sha256",
        "dlr_delay_ms": 50,
        "dlr_retries": 10,
    }


async def _emulator_config(rest_host: str, ca_file: str, changes: dict[str, Any]) -> None:
    ssl_context = ssl.create_default_context(cafile=ca_file)
    async with aiohttp.ClientSession() as http:
        url = f"https://{rest_host}/_emulator/config"
        async with http.post(url, json=changes, ssl=ssl_context) as response:
            response.raise_for_status()


async def _start_web(env: dict[str, str], work: Path, processes: list[Any]) -> str:
    """`campaigns serve` on a free port (web only: Redis is set), once ready."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (work / "web.log").open("wb")
    processes.append(
        subprocess.Popen(  # noqa: ASYNC220 (started before anything is timed)
            [sys.executable, "-m", "campaigns.cli.main", "serve", "--port", str(port)],
            cwd=work,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    )
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            try:
                async with http.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        return url
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"the web process did not start: {(work / 'web.log').read_text()[-2000:]}")


async def _one_campaign(
    args: argparse.Namespace, url: str, runtime: Runtime, mode: str, number: int
) -> tuple[int, float, float]:
    """Launch one campaign to everybody and wait until sent; (messages, launch s, msg/s)."""
    actor = Actor(None, "bench")
    settings = runtime.settings
    template = await create_template(f"Bench {number}", "sms", TemplateContent(BODY), actor=actor)
    audience = await Audience.create(name="Bench", criteria={"segments_any": ["domicilies"]})
    campaign = await campaign_service.create_campaign(
        name=f"Bench {mode}",
        channel="sms",
        template_id=template.id,
        audience_id=audience.id,
        actor=actor,
        settings=settings,
        now=runtime.clock(),
        sender="CCAS",
    )
    started = time.perf_counter()
    await campaign_launch.launch(campaign.id, actor=actor, runtime=runtime)
    launched = time.perf_counter()
    total = await Message.filter(campaign_id=campaign.id).count()
    print(f"launch (materialisation) of {total:,} messages: {launched - started:.2f} s")
    last_report = launched
    while (left := await _remaining(url, campaign.id)) > 0:
        await asyncio.sleep(0.5)
        if time.perf_counter() - last_report > 5:
            rate = (total - left) / (time.perf_counter() - launched)
            print(f"  ... {total - left:,} sent, {rate:,.0f} msg/s", flush=True)
            last_report = time.perf_counter()
        if time.perf_counter() - launched > args.limit:
            raise RuntimeError(f"{left} messages still unsent after {args.limit} s")
    elapsed = time.perf_counter() - launched
    if mode == "receipts":
        while await _remaining(url, campaign.id, ("submitted",)) > 0:
            await asyncio.sleep(0.5)
            if time.perf_counter() - launched > args.limit:
                break
        print(f"every receipt applied {time.perf_counter() - launched:.1f} s after the launch")
        conn = await asyncpg.connect(url.replace("postgres://", "postgresql://"))
        try:
            stored, waited = await conn.fetchrow(
                "SELECT count(*), count(*) FILTER (WHERE due_at IS NOT NULL) FROM delivery_receipt"
            )
        finally:
            await conn.close()
        print(f"receipts stored: {stored:,}, {waited:,} of them before their send was recorded")
    statuses = await Message.filter(campaign_id=campaign.id).values_list("status", flat=True)
    by_status: dict[str, int] = {}
    for status in statuses:
        by_status[str(status)] = by_status.get(str(status), 0) + 1
    print(f"final statuses: {by_status}")
    return total, launched - started, total / elapsed


def _roles(processes: list[Any], workers: int) -> dict[str, list[int]]:
    """The pids the bench started, by role (emulator first, then the workers, then web)."""
    pids = [p.pid for p in processes]
    return {"workers": pids[1 : 1 + workers], "emulator": pids[:1], "web": pids[1 + workers :]}


async def run(args: argparse.Namespace) -> None:
    await admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    await admin(f'CREATE DATABASE "{DATABASE}"')
    url = f"{BASE_URL}/{DATABASE}"
    queue = f"campaigns-bench-{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="dispatch-bench-"))
    finished = False
    processes: list[subprocess.Popen[bytes]] = []
    try:
        await migrate(url)
        await init_db(url)
        await _populate(url, args.people)
        emulator, rest_host, ca_file = _start_emulator(work / "tls", work / "emulator.log")
        processes.append(emulator)

        single = await asyncio.to_thread(
            measure_ceiling, rest_host, ca_file, args.ceiling_count, args.ceiling_threads, 1
        )
        print(
            f"plain SDK client, 1 process x {args.ceiling_threads} threads: {single:,.0f} SMS/s",
            flush=True,
        )
        ceiling = await asyncio.to_thread(
            measure_ceiling,
            rest_host,
            ca_file,
            args.ceiling_count,
            args.ceiling_threads,
            args.ceiling_processes,
        )
        print(
            f"ceiling: plain SDK client, {args.ceiling_processes} processes x "
            f"{args.ceiling_threads} threads: {ceiling:,.0f} SMS/s",
            flush=True,
        )

        env = _worker_env(args, url, queue, rest_host, ca_file)
        for i in range(args.workers):
            log = (work / f"worker-{i}.log").open("wb")
            processes.append(
                subprocess.Popen(  # noqa: ASYNC220 (started once, before anything is timed)
                    [sys.executable, "-m", "campaigns.cli.main", "worker"],
                    cwd=work,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        await asyncio.sleep(args.warmup)  # workers import, connect, beat

        settings = Settings(
            CAMPAIGNS_DATABASE_URL=url,
            CAMPAIGNS_SECRET_KEY="k" * 32,
            CAMPAIGNS_SEND_WINDOW="always",
            _env_file=None,  # type: ignore[call-arg]
        )
        runtime = offline_runtime(settings, queue=await ArqQueue.connect(REDIS_URL, queue))
        modes = (
            ["plain", "receipts"] if args.compare else ["receipts" if args.receipts else "plain"]
        )
        rates: dict[str, float] = {}
        figures: list[dict[str, Any]] = []
        for mode in modes:
            if mode == "receipts":
                web_url = await _start_web(env, work, processes)
                await _emulator_config(rest_host, ca_file, _receipts_config(web_url))
            else:
                await _emulator_config(rest_host, ca_file, {"dlr_url": None})
            label = " with receipts" if mode == "receipts" else ""
            print(f"--- run{label or ' without receipts'} (load {load_average()})", flush=True)
            roles = _roles(processes, args.workers)
            cpu_before = cpu_by_role(roles)
            total, launch_time, rate = await _one_campaign(args, url, runtime, mode, len(rates))
            print(
                "CPU during the run, ms per message: "
                + cpu_report(cpu_before, cpu_by_role(roles), total)
                + " (PostgreSQL: every database of the server)",
                flush=True,
            )
            rates[mode] = rate
            print(f"end to end: {total:,} messages in {total / rate:.1f} s: {rate:,.0f} msg/s")
            print(f"ratio to the ceiling: {rate / ceiling:.0%} (target >= 60 %, >= 300 msg/s)")
            figures += [
                {"name": f"dispatch bench launch of {total:,}", "value": launch_time, "unit": "s"},
                {"name": f"dispatch end to end{label}", "value": rate, "unit": "msg/s",
                 "ceiling": ceiling},
            ]  # fmt: skip
        if len(rates) == 2:
            # "Slower" in time: the same campaign takes this much longer with receipts.
            longer = rates["plain"] / rates["receipts"] - 1
            print(
                f"with receipts / without: {rates['receipts'] / rates['plain']:.0%} of the rate, "
                f"the run {longer:+.0%} longer (target: at most 10 % longer)"
            )
            figures.append(
                {"name": "dispatch with receipts / without", "value": rates["receipts"],
                 "unit": "msg/s", "ceiling": rates["plain"]}
            )  # fmt: skip
        print(f"load average after: {load_average()}")
        emit_result(figures)  # for bench/run_all.py
        await runtime.queue.close()  # type: ignore[union-attr]
        finished = True
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        await close_db()
        await _cleanup_redis(queue)
        await admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        if finished:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"logs kept in {work}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--people", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=24, help="sends in flight per worker")
    parser.add_argument("--batch", type=int, default=500, help="messages claimed at once")
    parser.add_argument("--ceiling-count", type=int, default=5000)
    parser.add_argument(
        "--ceiling-threads", type=int, help="threads per ceiling process (default: --concurrency)"
    )
    parser.add_argument(
        "--ceiling-processes", type=int, help="processes for the ceiling (default: --workers)"
    )
    parser.add_argument("--warmup", type=float, default=4.0)
    parser.add_argument("--limit", type=float, default=900.0)
    parser.add_argument(
        "--receipts", action="store_true", help="the emulator posts receipts to a web process"
    )
    parser.add_argument(
        "--compare", action="store_true", help="a run without receipts, then one with them"
    )
    args = parser.parse_args()
    args.ceiling_threads = args.ceiling_threads or args.concurrency
    args.ceiling_processes = args.ceiling_processes or args.workers
    asyncio.run(run(args))


if __name__ == "__main__":
    main()

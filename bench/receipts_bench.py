"""Benchmark of the delivery-receipt webhook: signed Vonage receipts over loopback, beside a
ceiling measured in the same run.

Run: `python bench/receipts_bench.py [--requests 20000] [--concurrency 32] [--quick]`.
Like bench/inbound_bench.py (whose servers it starts): PostgreSQL
(CAMPAIGNS_BENCH_POSTGRES_URL; a database of its own, created then dropped) and Redis
(CAMPAIGNS_BENCH_REDIS_URL; nonces and the coalesced `apply_receipts` jobs under keys of
the run, deleted at the end; no worker applies them, so applying never slows the webhook).

The real application runs in a child process on a real port, and so does the ceiling, a
bare aiohttp handler that reads the body and answers 204. This process sends the same
pre-signed receipts (HMAC-SHA256, a third each as GET query, POST form and POST JSON;
one per part and status, as Vonage sends them: `accepted` then `delivered` for most,
`failed` for a few) to each at a fixed concurrency, and reports requests/s, p50 and p99,
then checks that every receipt was stored once. The last line is `RESULT [...]` for
bench/run_all.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import inbound_bench as ib  # noqa: E402
from bench_support import emit_result, load_average  # noqa: E402

from providers.vonage.signatures import sign_params  # noqa: E402

PATH = "/webhooks/vonage/status"
TARGET_RPS = 4_000
TARGET_P99_MS = 50
TARGET_RATIO = 0.2


def _receipts(count: int, rng: random.Random, run: str) -> list[dict[str, str]]:
    """About `count` receipts: per message part an `accepted`, then a final state."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    receipts: list[dict[str, str]] = []
    index = 0
    while len(receipts) < count:
        index += 1
        common = {
            "msisdn": f"336{rng.randrange(10**8):08d}",
            "to": "CCAS",
            "network-code": "20801",
            "messageId": f"{run}{index:012X}",
            "price": "0.04870000",
            "scts": datetime.now(UTC).strftime("%y%m%d%H%M"),
            "client-ref": str(index),
            "message-timestamp": stamp,
            "api-key": "bench",
        }
        final = "failed" if rng.random() < 0.03 else "delivered"
        receipts.append({**common, "status": "accepted", "err-code": "0"})
        receipts.append(
            {**common, "status": final, "err-code": "0" if final == "delivered" else "9"}
        )
    return receipts[:count]


def build_requests(total: int, seed: int, run: str) -> list[ib.Request]:
    rng = random.Random(seed)
    now = int(time.time())
    requests = []
    for params in _receipts(total, rng, run):
        signed = sign_params(params, ib.SECRET, ib.METHOD, now, uuid.uuid4().hex)
        form = rng.choice(("get", "form", "json"))
        if form == "get":
            requests.append(ib.Request("GET", f"{PATH}?{urlencode(signed)}", None, None))
        elif form == "form":
            body = urlencode(signed).encode()
            requests.append(ib.Request("POST", PATH, body, "application/x-www-form-urlencoded"))
        else:
            requests.append(
                ib.Request("POST", PATH, json.dumps(signed).encode(), "application/json")
            )
    return requests


async def count_receipts(db_url: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(db_url.replace("postgres://", "postgresql://"))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM delivery_receipt"))
    finally:
        await conn.close()


def print_report(bare: ib.Result, app: ib.Result, args: argparse.Namespace) -> bool:
    print(
        f"\nWebhook d'accusés de réception : {app.requests:,} requêtes signées HMAC-SHA256, "
        f"concurrence {args.concurrency}, GET/formulaire/JSON mélangés, PostgreSQL + Redis, "
        "serveur et client dans deux processus"
    )
    header = ("requêtes/s", "p50 ms", "p99 ms", "CPU ms/req", "erreurs")
    print(f"{'':28} " + " ".join(f"{h:>11}" for h in header))
    for result in (bare, app):
        print(
            f"{result.name:28} {result.rps:11,.0f} {result.percentile(0.50):11.2f} "
            f"{result.percentile(0.99):11.2f} "
            f"{result.server_cpu * 1000 / result.requests:11.3f} {result.errors:11}"
        )
    ratio = app.rps / bare.rps
    print(f"rapport au plafond (requêtes/s) : {ratio:.2f}")
    met = app.rps >= TARGET_RPS and app.percentile(0.99) < TARGET_P99_MS and ratio >= TARGET_RATIO
    print(
        f"cible ≥ {TARGET_RPS:,} requêtes/s, p99 < {TARGET_P99_MS} ms et ≥ {TARGET_RATIO} du "
        f"plafond : {'atteinte' if met else 'NON atteinte'}"
    )
    return met


async def main(args: argparse.Namespace) -> int:
    print(f"charge avant : {load_average()} (2 cœurs)", flush=True)
    run = uuid.uuid4().hex[:6].upper()
    database = f"campaigns_bench_receipts_{os.getpid()}"
    queue_name = f"bench-receipts-{run}"
    warmup = build_requests(args.warmup, args.seed + 1, "W" + run)
    requests = build_requests(args.requests, args.seed, run)
    db_url = await ib.create_database(database)
    try:
        bare = await ib.measure(
            "aiohttp nu (204, plafond)", "bare", [], {}, warmup, requests, args.concurrency, 0
        )
        app = await ib.measure(
            "webhook campaigns",
            "app",
            ["--db", db_url],
            {"CAMPAIGNS_QUEUE_NAME": queue_name},
            warmup,
            requests,
            args.concurrency,
            0,
        )
        print_report(bare, app, args)
        print(f"charge après : {load_average()}", flush=True)
        stored = await count_receipts(db_url)
        expected = len(warmup) + len(requests)
        print(f"vérification : {stored:,} accusés en base sur {expected:,} envoyés")
        emit_result(
            [
                {"name": "receipts webhook requests/s", "value": app.rps, "unit": "req/s",
                 "ceiling": bare.rps},
                {"name": "receipts webhook p99", "value": app.percentile(0.99), "unit": "ms"},
            ]
        )  # fmt: skip
        return 0 if app.errors == 0 and stored == expected else 1
    finally:
        await ib.cleanup_redis(queue_name)
        if not args.keep:
            await ib.drop_database(database)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="5 000 requêtes")
    parser.add_argument("--warmup", type=int, default=1_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="ne pas supprimer la base")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests = min(args.requests, 5_000)
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))

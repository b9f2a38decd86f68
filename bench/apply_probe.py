"""Probe: CPU of applying delivery receipts in bulk (`apply_pending_receipts`), on PostgreSQL.

Run: `python bench/apply_probe.py [--messages 4000] [--batch 500]`. A database of its own
(CAMPAIGNS_BENCH_POSTGRES_URL), dropped at the end. N submitted messages of one part each,
then an `accepted` and a `delivered` receipt per part, stored; then applied `--batch` at a
time, as the job does. Prints the applier's CPU (this process) and PostgreSQL's (its
backends) per receipt, and the wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_support import BASE_URL, admin, cpu_seconds_by_pid, cpu_spent_since  # noqa: E402

DATABASE = f"campaigns_apply_probe_{os.getpid()}"


async def main(args: argparse.Namespace) -> None:
    from campaigns.core.db import close_db, init_db, migrate
    from campaigns.dispatch import receipt_store, receipts
    from campaigns.models import Message, MessagePart, MessageStatus
    from providers.base import DeliveryReceipt as Receipt
    from tests.dispatch_support import make_run

    await admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    await admin(f'CREATE DATABASE "{DATABASE}"')
    url = f"{BASE_URL}/{DATABASE}"
    try:
        await migrate(url)
        await init_db(url)
        _, run = await make_run(args.messages)
        ids = sorted(await Message.filter(run_id=run.id).values_list("id", flat=True))
        await Message.filter(id__in=ids).update(status=MessageStatus.SUBMITTED)
        await MessagePart.bulk_create(
            [MessagePart(message_id=mid, provider_message_id=f"P{mid}") for mid in ids]
        )
        now = datetime.now(UTC)
        stored = []
        for status in ("accepted", "delivered"):
            for mid in ids:
                stored.append(Receipt(
                    message_id=f"P{mid}", msisdn="+33610000000", to="CCAS", status=status,
                    err_code="0", error_text="Remis", price=Decimal("0.0487"),
                    client_ref=str(mid), network_code="20801", scts=None,
                    message_timestamp=now, raw={},
                ))  # fmt: skip
        for start in range(0, len(stored), 256):
            await receipt_store.store_receipts(stored[start : start + 256], now)
        pg_before = cpu_seconds_by_pid()
        cpu = time.process_time()
        wall = time.perf_counter()
        applied = rounds = 0
        while True:
            tally = await receipts.apply_pending_receipts(datetime.now(UTC), limit=args.batch)
            if tally.total == 0:
                break
            applied += tally.applied
            rounds += 1
        wall = time.perf_counter() - wall
        cpu = time.process_time() - cpu
        pg = cpu_spent_since(pg_before, cpu_seconds_by_pid())
        delivered = await Message.filter(id__in=ids, status=MessageStatus.DELIVERED).count()
        print(
            f"{applied:,} receipts applied in {rounds} rounds of {args.batch}: {wall:.2f} s, "
            f"applier CPU {cpu * 1e6 / applied:.0f} µs/receipt, PostgreSQL CPU "
            f"{pg * 1e6 / applied:.0f} µs/receipt; {delivered:,}/{len(ids):,} delivered"
        )
    finally:
        await close_db()
        await admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=500)
    asyncio.run(main(parser.parse_args()))

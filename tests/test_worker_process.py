"""Real `campaigns worker` processes against PostgreSQL, Redis and the Vonage emulator (real SDK).

One test kills a worker with SIGKILL mid-campaign and proves at the emulator that no
recipient got two messages, and that what the dead worker had claimed but not yet
handed to the provider is sent after all, once; the other runs a campaign end to end,
launched over HTTP, with signed delivery receipts posted back to the app's status webhook.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from redis.asyncio import Redis

from campaigns import staff as staff_service
from campaigns.core.runtime import Runtime
from campaigns.core.settings import Settings
from campaigns.models import Campaign, CampaignStatus, Message, MessageStatus, Role
from campaigns.web.app import create_app
from providers.emulator import EmulatorConfig, VonageEmulator
from tests.dispatch_support import counts, create_campaign, launch_campaign
from tests.services import REDIS_URL, require_redis
from workers.runtime import build_runtime, close_runtime

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
KEY, SECRET, SIGNING = "worker-key", "worker-secret", "secret-des-accuses"
M = MessageStatus


def campaigns_command() -> list[str]:
    script = Path(sys.executable).with_name("campaigns")
    if script.exists():
        return [str(script)]
    found = shutil.which("campaigns")
    return [found] if found else [sys.executable, "-m", "campaigns.cli.main"]


@pytest.fixture
async def queue_name() -> AsyncIterator[str]:
    """A queue of this test's own; every Redis key it leaves behind is deleted."""
    require_redis()
    name = f"campaigns-test-{uuid.uuid4().hex[:10]}"
    yield name
    redis = Redis.from_url(REDIS_URL)
    keys = [key async for key in redis.scan_iter(match=f"{name}*", count=1000)]
    keys += [key async for key in redis.scan_iter(match=f"arq:*:{name}:*", count=1000)]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


@pytest.fixture
async def emulator(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[VonageEmulator]:
    config = EmulatorConfig(api_key=KEY, api_secret=SECRET, dlr_concurrency=32)
    emu = VonageEmulator(config, cert_dir=tmp_path_factory.mktemp("worker-tls"))
    await emu.start()
    yield emu
    await emu.stop()


@pytest.fixture
async def app_runtime(
    pg_db: str, queue_name: str, tmp_path: Path
) -> AsyncIterator[tuple[Runtime, str]]:
    """The web side in this process: launches campaigns and takes receipts on a real port."""
    settings = Settings(
        CAMPAIGNS_DATABASE_URL=pg_db,
        CAMPAIGNS_REDIS_URL=REDIS_URL,
        CAMPAIGNS_SEND_WINDOW="always",
        CAMPAIGNS_TIMEZONE="Europe/Paris",
        CAMPAIGNS_OUTBOX_DIR=str(tmp_path / "outbox"),
        CAMPAIGNS_SECRET_KEY="k" * 32,
        CAMPAIGNS_QUEUE_NAME=queue_name,
        # A configured CCAS: the API refuses to launch with the placeholder hotline.
        CAMPAIGNS_CCAS_NAME="CCAS de Test-sur-Mer",
        CAMPAIGNS_CCAS_HOTLINE="0 800 12 34 56",
        _env_file=None,  # type: ignore[call-arg]
    )
    runtime = await build_runtime(settings)
    runner = web.AppRunner(create_app(runtime), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield runtime, f"http://127.0.0.1:{port}"
    await runner.cleanup()
    await close_runtime(runtime)


class Workers:
    """`campaigns worker` subprocesses sharing this test's queue, database and emulator."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = (self.cwd / f"worker-{len(self.processes)}.log").open("wb")
        process = subprocess.Popen(
            [*campaigns_command(), "worker"],
            env=self.env,
            cwd=self.cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        return process

    def logs(self) -> str:
        return "\n".join(
            (self.cwd / f"worker-{i}.log").read_text(errors="replace")[-3000:]
            for i in range(len(self.processes))
        )

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def workers(
    pg_db: str, queue_name: str, emulator: VonageEmulator, tmp_path: Path
) -> AsyncIterator[Workers]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CAMPAIGNS_", "VONAGE_")) and k.upper() != "TIMEZONE"
    }
    env.update(
        CAMPAIGNS_DATABASE_URL=pg_db,
        CAMPAIGNS_REDIS_URL=REDIS_URL,
        CAMPAIGNS_QUEUE_NAME=queue_name,
        CAMPAIGNS_SMS_PROVIDER="vonage",
        VONAGE_SIGNATURE_SECRET=SIGNING,
        VONAGE_API_KEY=KEY,
        VONAGE_API_SECRET=SECRET,
        VONAGE_SMS_HOST=emulator.rest_host,
        VONAGE_CA_FILE=str(emulator.ca_file),
        CAMPAIGNS_SEND_WINDOW="always",
        CAMPAIGNS_TIMEZONE="Europe/Paris",
        # Paced: a batch of 60 is handed over in groups for two seconds, so a kill lands
        # on a batch partly handed over.
        CAMPAIGNS_SEND_RATE="30",
        CAMPAIGNS_BATCH_SIZE="60",
        CAMPAIGNS_SEND_CONCURRENCY="8",
        CAMPAIGNS_WORKER_HEARTBEAT="2",
        CAMPAIGNS_OUTBOX_DIR=str(tmp_path / "outbox"),
        CAMPAIGNS_SECRET_KEY="k" * 32,
    )
    pool = Workers(env, tmp_path)
    yield pool  # type: ignore[misc]
    pool.stop_all()


async def wait_for(
    check: Callable[[], Any], seconds: float, what: str, workers: Workers | None = None
) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            logs = workers.logs() if workers else ""
            raise AssertionError(f"timed out waiting for {what}\n{logs}")
        await asyncio.sleep(0.1)


async def test_a_killed_worker_never_causes_a_second_message(
    app_runtime: tuple[Runtime, str], emulator: VonageEmulator, workers: Workers
) -> None:
    runtime, base_url = app_runtime
    # Slow enough that the campaign takes seconds, with receipts flowing back.
    emulator.update(latency_ms=100, dlr_url=f"{base_url}/webhooks/vonage/status", dlr_delay_ms=50)
    first = workers.start()
    launched = await launch_campaign(runtime, 300)
    campaign_id = launched["campaign_id"]
    assert await counts(campaign_id) == {"queued": 300}

    async def mid_batch() -> bool:
        # Half-way through the second batch: some of its claims handed over, some not yet.
        if len(emulator.received) < 90:
            return False
        claims = Message.filter(campaign_id=campaign_id, status=M.SENDING)
        return (
            await claims.filter(handed_at__isnull=True).exists()
            and await claims.filter(handed_at__isnull=False).exists()
        )

    await wait_for(mid_batch, 40, "first sends", workers)
    # The receipts of what is in flight now come late: first the messages caught by the
    # kill must be found unconfirmed, then their receipts settle them. Late enough that a
    # slow start of the next worker (imports, on a loaded machine) still comes first: the
    # new worker settles a dead one's claims, then applies the receipts that waited.
    emulator.update(dlr_delay_ms=30_000)
    first.send_signal(signal.SIGKILL)
    first.wait()
    claims = await Message.filter(campaign_id=campaign_id, status=M.SENDING).values_list(
        "id", "handed_at"
    )
    handed = {mid for mid, at in claims if at is not None}
    not_handed = {mid for mid, at in claims if at is None}
    assert not_handed, "the worker was killed between batches: nothing to prove"
    await asyncio.sleep(2.5)  # its heartbeat expires
    workers.start()

    seen_unconfirmed: set[int] = set()

    async def unconfirmed() -> bool:
        ids = await Message.filter(campaign_id=campaign_id, status=M.UNCONFIRMED).values_list(
            "id", flat=True
        )
        seen_unconfirmed.update(ids)
        return bool(ids)

    await wait_for(unconfirmed, 20, "the dead worker's handed claims to be unconfirmed", workers)
    emulator.update(dlr_delay_ms=50)

    async def finished() -> bool:
        await unconfirmed()
        campaign = await Campaign.get(id=campaign_id)
        return campaign.status == CampaignStatus.COMPLETED

    await wait_for(finished, 60, "the campaign to complete", workers)
    sent_refs = Counter(r["client-ref"] for r in emulator.received)
    sent_to = Counter(r["to"] for r in emulator.received)
    # Never twice: not by recipient, not by message.
    assert max(sent_refs.values()) == 1, [ref for ref, n in sent_refs.items() if n > 1]
    assert max(sent_to.values()) == 1
    reached = {int(ref) for ref in sent_refs}

    async def settled() -> bool:
        await emulator.drain_receipts()
        rows = await Message.filter(campaign_id=campaign_id).values_list("id", "status")
        return all((status == M.DELIVERED) == (mid in reached) for mid, status in rows)

    await wait_for(settled, 60, "receipts to settle every message that left", workers)
    rows = {
        mid: (status, attempts)
        for mid, status, attempts in await Message.filter(campaign_id=campaign_id).values_list(
            "id", "status", "attempts"
        )
    }
    assert len(rows) == 300
    # Claimed but never handed over: queued again by the next worker, sent exactly once,
    # the dead worker's attempt given back.
    assert not_handed <= reached
    assert all(rows[mid] == (M.DELIVERED, 1) for mid in not_handed)
    # Only what had been handed over can be unconfirmed, and left unsent.
    assert seen_unconfirmed <= handed
    never_left = {mid for mid in rows if mid not in reached}
    assert never_left <= handed
    assert all(rows[mid][0] == M.UNCONFIRMED for mid in never_left)
    # Those caught in flight that had in fact left went unconfirmed, then their receipt came.
    settled_by_receipt = seen_unconfirmed & reached
    assert settled_by_receipt, (seen_unconfirmed, handed)
    assert all(rows[mid][0] == M.DELIVERED for mid in settled_by_receipt)


async def _received_at_least(emulator: VonageEmulator, n: int) -> bool:
    return len(emulator.received) >= n


async def test_a_campaign_end_to_end_with_signed_receipts(
    app_runtime: tuple[Runtime, str], emulator: VonageEmulator, workers: Workers
) -> None:
    runtime, base_url = app_runtime
    runtime.settings.vonage_signature_secret = SIGNING
    runtime.settings.vonage_signature_method = "sha256"
    emulator.update(
        dlr_url=f"{base_url}/webhooks/vonage/status",
        dlr_format="form",
        dlr_signature_secret=SIGNING,
        dlr_signature_method="sha256",
        dlr_delay_ms=20,
    )
    workers.start()
    campaign_id = await create_campaign(runtime, 60)
    staff, _ = await staff_service.create_staff(
        "coord@ccas.test", Role.COORDINATOR, password="x" * 12
    )
    token = await staff_service.issue_token(staff)
    headers = {"Authorization": f"Bearer {token}"}

    import aiohttp

    async with aiohttp.ClientSession(base_url) as http:
        async with http.post(f"/api/v1/campaigns/{campaign_id}/launch", headers=headers) as r:
            assert r.status == 200, await r.text()

        async def all_delivered() -> dict[str, Any] | None:
            async with http.get(f"/api/v1/campaigns/{campaign_id}", headers=headers) as r:
                body = await r.json()
            done = body["status"] == "completed" and body["counts"].get("delivered") == 60
            return body if done else None

        body = await wait_for(all_delivered, 40, "60 delivered messages", workers)
    assert await counts(campaign_id) == {"delivered": 60}
    assert len(emulator.received) == 60
    assert emulator.dlr_failures == 0
    assert body["counts"]["delivered"] == 60

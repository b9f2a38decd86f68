"""What every fault scenario runs on: its own cluster, Redis, emulator, web side and workers.

The web side (status webhook, launches) runs in the test's process on a real port, as
`campaigns serve` builds it; the workers are real `campaigns worker` processes. The
emulator posts signed delivery receipts to the web side and records every request that
reached it: the scenarios check the database against it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from campaigns.core.runtime import Runtime
from campaigns.core.settings import Settings
from campaigns.dispatch.outages import database_unavailable
from campaigns.models import Campaign, CampaignStatus, DeliveryReceipt, Message, MessageStatus
from providers.emulator import VonageEmulator
from tests.faults.services import PgCluster, RedisServer

M = MessageStatus
KEY, SECRET, SIGNING = "faults-key", "faults-secret", "secret-des-accuses-pannes"
QUEUE = "campaigns-faults"
FINAL_OK = {M.SUBMITTED.value, M.DELIVERED.value}
FAILED = {M.FAILED.value, M.REJECTED.value, M.EXPIRED.value}


def campaigns_command() -> list[str]:
    script = Path(sys.executable).with_name("campaigns")
    if script.exists():
        return [str(script)]
    found = shutil.which("campaigns")
    return [found] if found else [sys.executable, "-m", "campaigns.cli.main"]


class Workers:
    """`campaigns worker` processes sharing the scenario's database, Redis and emulator."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, count: int = 1) -> list[subprocess.Popen[bytes]]:
        started = []
        for _ in range(count):
            log = (self.cwd / f"worker-{len(self.processes)}.log").open("wb")
            process = subprocess.Popen(
                [*campaigns_command(), "worker"],
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            self.processes.append(process)
            started.append(process)
        return started

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.processes if p.poll() is None]

    def logs(self) -> str:
        return "\n".join(
            f"--- worker {i} (pid {p.pid}, exit {p.poll()}) ---\n"
            + (self.cwd / f"worker-{i}.log").read_text(errors="replace")
            for i, p in enumerate(self.processes)
        )

    def stop_all(self, wait: float = 15) -> None:
        for process in self.alive():
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + wait
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class Scenario:
    """One test's world. `runtime` is the web side's; `base_url` where the emulator posts."""

    def __init__(
        self,
        root: Path,
        cluster: PgCluster,
        redis: RedisServer,
        emulator: VonageEmulator,
    ) -> None:
        self.root = root
        self.cluster = cluster
        self.redis = redis
        self.emulator = emulator
        self.runtime: Runtime | None = None
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMPAIGNS_", "VONAGE_"))}
        env.pop("REQUESTS_CA_BUNDLE", None)
        env.update(
            CAMPAIGNS_DATABASE_URL=cluster.url,
            CAMPAIGNS_REDIS_URL=redis.url,
            CAMPAIGNS_QUEUE_NAME=QUEUE,
            CAMPAIGNS_SMS_PROVIDER="vonage",
            VONAGE_SIGNATURE_SECRET=SIGNING,
            VONAGE_SIGNATURE_METHOD="sha256",
            VONAGE_API_KEY=KEY,
            VONAGE_API_SECRET=SECRET,
            VONAGE_SMS_HOST=emulator.rest_host,
            VONAGE_CA_FILE=str(emulator.ca_file),
            CAMPAIGNS_SEND_WINDOW="always",
            CAMPAIGNS_TIMEZONE="Europe/Paris",
            CAMPAIGNS_SEND_RATE="100",
            CAMPAIGNS_BATCH_SIZE="100",
            CAMPAIGNS_SEND_CONCURRENCY="8",
            CAMPAIGNS_DISPATCH_LANES="2",
            CAMPAIGNS_WORKER_HEARTBEAT="2",
            CAMPAIGNS_OUTBOX_DIR=str(root / "outbox"),
            CAMPAIGNS_SECRET_KEY="k" * 32,
        )
        self.workers = Workers(env, root)

    def settings(self) -> Settings:
        return Settings(
            CAMPAIGNS_DATABASE_URL=self.cluster.url,
            CAMPAIGNS_REDIS_URL=self.redis.url,
            CAMPAIGNS_QUEUE_NAME=QUEUE,
            CAMPAIGNS_SEND_WINDOW="always",
            CAMPAIGNS_TIMEZONE="Europe/Paris",
            CAMPAIGNS_OUTBOX_DIR=str(self.root / "outbox"),
            CAMPAIGNS_SECRET_KEY="k" * 32,
            VONAGE_SIGNATURE_SECRET=SIGNING,
            VONAGE_SIGNATURE_METHOD="sha256",
            _env_file=None,  # type: ignore[call-arg]
        )

    async def start_web(self) -> None:
        from campaigns.web.app import create_app
        from workers.runtime import build_runtime

        self.runtime = await build_runtime(self.settings())
        self._runner = web.AppRunner(create_app(self.runtime), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        self.emulator.update(
            dlr_url=f"{self.base_url}/webhooks/vonage/status",
            dlr_format="form",
            dlr_signature_secret=SIGNING,
            dlr_signature_method="sha256",
            dlr_delay_ms=30,
            dlr_retries=40,
            dlr_retry_cap=1.0,
            dlr_concurrency=16,
        )

    async def stop_web(self) -> None:
        from workers.runtime import close_runtime

        if self._runner is not None:
            await self._runner.cleanup()
        if self.runtime is not None:
            await close_runtime(self.runtime)

    # -- waiting --------------------------------------------------------------------------
    async def wait_for(self, check: Callable[[], Awaitable[Any]], seconds: float, what: str) -> Any:
        """Poll `check` until truthy; the database being away meanwhile is not a failure."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                result = await check()
            except Exception as exc:
                if not database_unavailable(exc):
                    raise
                result = None
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}\n{self.workers.logs()[-6000:]}")
            await asyncio.sleep(0.1)

    async def accepted_at_least(self, n: int, seconds: float = 60) -> None:
        async def enough() -> bool:
            return sum(self.emulator.delivered_to().values()) >= n

        await self.wait_for(enough, seconds, f"{n} messages accepted by the emulator")

    async def settled(self, campaign_id: int, seconds: float = 90) -> dict[str, int]:
        """Wait until nothing is left to send or to confirm, and receipts have landed."""

        async def done() -> dict[str, int] | None:
            campaign = await Campaign.get(id=campaign_id)
            counts = await status_counts(campaign_id)
            if campaign.status not in (CampaignStatus.COMPLETED, CampaignStatus.CANCELLED):
                return None
            if counts.get("queued") or counts.get("sending") or counts.get("submitted"):
                return None
            # An unconfirmed message that reached the provider gets its receipt: wait for it.
            arrived = self.emulator.delivered_to()
            unconfirmed = await Message.filter(
                campaign_id=campaign_id, status=M.UNCONFIRMED
            ).values_list("id", flat=True)
            if any(str(mid) in arrived for mid in unconfirmed):
                return None
            return counts

        try:
            return await self.wait_for(done, seconds, "the campaign to settle")  # type: ignore[no-any-return]
        except AssertionError as exc:
            campaign = await Campaign.get(id=campaign_id)
            stuck = (
                await Message.filter(campaign_id=campaign_id)
                .exclude(status__in=[M.DELIVERED, M.CANCELLED])
                .limit(5)
                .values("id", "status", "claimed_by", "handed_at", "attempts", "error")
            )
            pending = await DeliveryReceipt.filter(applied_at__isnull=True).count()
            raise AssertionError(
                f"campaign {campaign.status}, {await status_counts(campaign_id)}, "
                f"receipts pending {pending}, emulator {self.emulator.counts()['dlr_sent']} "
                f"sent / {self.emulator.dlr_failures} failed, stuck {stuck}\n{exc}"
            ) from None

    # -- checking -------------------------------------------------------------------------
    async def check_nobody_twice_nobody_left(
        self, campaign_id: int, *, cancelled_ok: bool = False
    ) -> dict[str, int]:
        """At the emulator and in the database: no one got two messages, and every person
        ended sent (delivered), failed with a reason, or unconfirmed only if the emulator
        says the request arrived."""
        accepted = self.emulator.delivered_to()
        arrived = {r["client-ref"] for r in self.emulator.received}
        doubles = {ref: n for ref, n in accepted.items() if n > 1}
        assert not doubles, f"sent twice: {doubles}"
        by_phone = Counter(
            r["to"]
            for r in self.emulator.received
            if r["status"] == "0" or str(r["status"]).startswith("partial")
        )
        twice = [phone for phone, n in by_phone.items() if n > 1]
        assert not twice, [r for r in self.emulator.received if r["to"] in twice[:3]]
        rows = await Message.filter(campaign_id=campaign_id).values_list("id", "status", "error")
        problems = []
        for mid, status, error in rows:
            ref, status = str(mid), str(status)
            if status in FINAL_OK:
                ok = ref in accepted
            elif status in FAILED:
                ok = bool(error) and ref not in accepted
            elif status == M.UNCONFIRMED.value:
                ok = ref in arrived
            elif status == M.CANCELLED.value:
                ok = cancelled_ok and ref not in accepted
            else:
                ok = False
            if not ok:
                problems.append((mid, status, error, ref in accepted, ref in arrived))
        assert not problems, f"{len(problems)} people not accounted for: {problems[:10]}"
        assert set(accepted) <= {str(mid) for mid, _, _ in rows}
        return await status_counts(campaign_id)

    def deadlocks(self) -> list[str]:
        text = self.workers.logs() + "\n" + self.cluster.log_text()
        return [line for line in text.splitlines() if "deadlock" in line.lower()]

    def worker_of(self, claimed_by: str) -> subprocess.Popen[bytes] | None:
        for process in self.workers.alive():
            if f"-{process.pid}-" in claimed_by:
                return process
        return None


async def status_counts(campaign_id: int) -> dict[str, int]:
    statuses = await Message.filter(campaign_id=campaign_id).values_list("status", flat=True)
    return dict(Counter(str(s) for s in statuses))

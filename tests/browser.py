"""Helpers for the browser tests: Debian's chromium under Playwright, the app on a real port."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from campaigns import staff as staff_service
from campaigns.core.db import close_db, init_db
from campaigns.core.runtime import Runtime
from campaigns.core.settings import Settings
from campaigns.models import Role
from providers.emulator import EmulatorConfig, VonageEmulator
from tests.services import in_ci
from workers.runtime import build_runtime, close_runtime

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("CAMPAIGNS_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
PASSWORD = "mot-de-passe-solide"


# The project's own sample registers: nothing is read outside the repository.
DATA = ROOT / "tests" / "data"


def require_chromium() -> str:
    """The chromium executable; skip (fail in CI) when it is missing."""
    path = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if path:
        return str(path)
    message = f"chromium not found at {CHROMIUM}: apt-get install chromium to run browser tests"
    if in_ci():
        pytest.fail(f"{message}; CI requires it", pytrace=False)
    pytest.skip(message)


async def launch(playwright: Any) -> Any:
    return await playwright.chromium.launch(
        executable_path=require_chromium(), headless=True, args=CHROMIUM_ARGS
    )


async def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def login(page: Any, base_url: str, email: str, password: str = PASSWORD) -> None:
    await page.goto(f"{base_url}/connexion")
    await page.fill("#email", email)
    await page.fill("#password", password)
    await page.click("button[type=submit]")
    await page.wait_for_selector("h1:has-text('Tableau de bord')")


SIGNATURE_SECRET = "secret-de-signature-des-webhooks"


@dataclass
class LiveApp:
    """The web app on a real port, sending to the Vonage emulator with the in-process worker."""

    base_url: str
    runtime: Runtime
    emulator: VonageEmulator


@asynccontextmanager
async def live_app(
    database_url: str,
    tmp_path: Path,
    *,
    clock: Callable[[], datetime] | None = None,
    **overrides: Any,
) -> AsyncIterator[LiveApp]:
    """`overrides` replace settings (by environment name); `clock` the service's time."""
    from campaigns.web.app import create_app

    emulator = VonageEmulator(
        EmulatorConfig(api_key="emulator-key", api_secret="emulator-secret"),
        cert_dir=tmp_path / "tls",
    )
    await emulator.start()
    await init_db(database_url)
    values: dict[str, Any] = dict(
        CAMPAIGNS_DATABASE_URL=database_url,
        CAMPAIGNS_SMS_PROVIDER="vonage",
        VONAGE_SIGNATURE_SECRET=SIGNATURE_SECRET,
        VONAGE_SIGNATURE_METHOD="sha256",
        VONAGE_API_KEY="emulator-key",
        VONAGE_API_SECRET="emulator-secret",
        VONAGE_SMS_HOST=emulator.rest_host,
        VONAGE_CA_FILE=str(emulator.ca_file),
        CAMPAIGNS_SEND_WINDOW="always",
        # No shared rate limit: the flow must fit in a minute (Vonage's 30/s is for production).
        CAMPAIGNS_SEND_RATE=0,
        CAMPAIGNS_SMS_SENDER="33644630000",
        CAMPAIGNS_OUTBOX_DIR=str(tmp_path / "outbox"),
        CAMPAIGNS_SECRET_KEY="b" * 32,
        # A configured CCAS: the placeholders of the defaults refuse a launch.
        CAMPAIGNS_CCAS_NAME="CCAS de Villeurbanne",
        CAMPAIGNS_CCAS_HOTLINE="04 72 00 00 00",
    )
    values.update(overrides)
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    runtime = await build_runtime(settings)
    if clock is not None:
        runtime.clock = clock
    await runtime.queue.start()  # type: ignore[union-attr]
    runner = web.AppRunner(create_app(runtime), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base_url = f"http://127.0.0.1:{port}"
    emulator.update(
        dlr_url=f"{base_url}/webhooks/vonage/status",
        dlr_signature_secret=SIGNATURE_SECRET,
        dlr_signature_method="sha256",
    )
    for role in Role:
        await staff_service.create_staff(f"{role.value}@ccas.test", role, password=PASSWORD)
    try:
        yield LiveApp(base_url, runtime, emulator)
    finally:
        await runner.cleanup()
        await close_runtime(runtime)
        await emulator.stop()
        await close_db()

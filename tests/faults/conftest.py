"""Fixtures of the fault-injection suite: a world per test, and a hard time limit per test.

Every test gets a PostgreSQL cluster copied from one migrated template (initdb and
migrations run once per session), a Redis server, the emulator and the web side; the
test starts the workers it needs. Each test runs under a hard limit (`fault_timeout`
marker, default `DEFAULT_LIMIT` seconds): an alarm fails it, and the processes it
started are killed whatever state its event loop is in.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import FrameType

import asyncpg
import pytest

from campaigns.core.db import close_db, init_db, migrate
from providers.emulator import EmulatorConfig, VonageEmulator
from tests.faults.harness import KEY, SECRET, Scenario
from tests.faults.services import DATABASE, PgCluster, RedisServer, require_binaries, work_dir

DEFAULT_LIMIT = 90.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fault_timeout(seconds): hard time limit of a fault test")


class HardTimeout(Exception):
    """The test ran past its hard limit."""


@pytest.fixture(autouse=True)
def hard_timeout(request: pytest.FixtureRequest) -> Iterator[None]:
    marker = request.node.get_closest_marker("fault_timeout")
    limit = float(marker.args[0]) if marker else DEFAULT_LIMIT

    def expired(signum: int, frame: FrameType | None) -> None:
        raise HardTimeout(f"{request.node.name}: over its hard limit of {limit:.0f} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="session")
def pg_template() -> Iterator[PgCluster]:
    """One migrated cluster, stopped, that every test copies."""
    require_binaries()
    root = work_dir("campaigns-faults-template-")
    cluster = PgCluster.init(root)
    cluster.start()
    try:

        async def create() -> None:
            conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{cluster.port}/postgres")
            await conn.execute(f'CREATE DATABASE "{DATABASE}"')
            await conn.close()
            await migrate(cluster.url)

        asyncio.run(create())
    finally:
        cluster.stop()
    yield cluster
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def scenario(
    pg_template: PgCluster, request: pytest.FixtureRequest
) -> AsyncIterator[Scenario]:
    root = work_dir("campaigns-faults-")
    cluster = pg_template.copy_to(root)
    redis = RedisServer(root)
    emulator = VonageEmulator(
        EmulatorConfig(api_key=KEY, api_secret=SECRET), cert_dir=Path(root) / "tls"
    )

    worlds: list[Scenario] = []

    def kill_everything() -> None:
        # Runs even when the test's event loop is beyond saving (a hard timeout).
        for world in worlds:
            world.workers.stop_all(wait=10)
        redis.kill()
        cluster.stop("immediate")
        if not os.environ.get("CAMPAIGNS_TEST_FAULTS_KEEP"):  # keep the logs to look at them
            shutil.rmtree(root, ignore_errors=True)

    request.addfinalizer(kill_everything)
    cluster.start()
    redis.start()
    await emulator.start()
    world = Scenario(root, cluster, redis, emulator)
    worlds.append(world)
    await init_db(cluster.url)
    await world.start_web()
    try:
        yield world
    finally:
        world.workers.stop_all(wait=10)
        await world.stop_web()
        await emulator.stop()
        await close_db()

"""Shared fixtures: a migrated database on SQLite and on PostgreSQL, the app, staff tokens."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher
from tortoise import Tortoise

from campaigns import staff as staff_service
from campaigns.core.db import close_db, init_db, migrate
from campaigns.core.runtime import Runtime
from campaigns.core.settings import Settings
from campaigns.models import Role
from tests.services import POSTGRES_URL, require_postgres

# Real argon2, at a cost fit for hundreds of test accounts rather than for an attacker.
staff_service._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
staff_service._DUMMY_HASH = staff_service._hasher.hash("not-a-real-password")

# Tests never read the developer's own .env or environment for the service settings.
for _name in list(os.environ):
    if _name.startswith("CAMPAIGNS_") and not _name.startswith("CAMPAIGNS_TEST_"):
        del os.environ[_name]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file, copied for each test (migrating is the slow part)."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    asyncio.run(migrate(f"sqlite://{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database of this test session's own, so that parallel runs never meet."""
    require_postgres()
    name = f"campaigns_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    base = POSTGRES_URL.rsplit("/", 1)[0]

    async def create() -> None:
        conn = await asyncpg.connect(POSTGRES_URL.replace("postgres://", "postgresql://"))
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()
        await migrate(f"{base}/{name}")

    async def drop() -> None:
        conn = await asyncpg.connect(POSTGRES_URL.replace("postgres://", "postgresql://"))
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()

    asyncio.run(create())
    yield f"{base}/{name}"
    asyncio.run(drop())


async def _truncate_postgres() -> None:
    conn = Tortoise.get_connection("default")
    import campaigns.models as models

    tables = sorted(
        {
            getattr(models, name)._meta.db_table
            for name in models.__all__
            if hasattr(getattr(models, name), "_meta")
        }
    )
    quoted = ", ".join(f'"{t}"' for t in tables)
    await conn.execute_script(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, sqlite_template: Path, tmp_path: Path) -> str:
    """The URL of a migrated, empty database; each test runs on both engines."""
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite://{path}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[str]:
    await init_db(db_url)
    if db_url.startswith("postgres"):
        await _truncate_postgres()
    yield db_url
    await close_db()


@pytest.fixture
async def pg_db(postgres_url: str) -> AsyncIterator[str]:
    """PostgreSQL only: for locking and concurrency tests."""
    await init_db(postgres_url)
    await _truncate_postgres()
    yield postgres_url
    await close_db()


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(
        CAMPAIGNS_DATABASE_URL=db_url,
        CAMPAIGNS_OUTBOX_DIR=str(tmp_path / "outbox"),
        CAMPAIGNS_SECRET_KEY="k" * 32,
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
async def runtime(settings: Settings, db: str) -> AsyncIterator[Runtime]:
    from workers.runtime import build_runtime, close_runtime

    rt = await build_runtime(settings)
    yield rt
    await close_runtime(rt)


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[TestClient]:
    from campaigns.web.app import create_app

    async with TestClient(TestServer(create_app(runtime))) as test_client:
        yield test_client


class Tokens(dict[str, str]):
    """Bearer tokens by role, with the header ready to send."""

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self[role]}"}


@pytest.fixture
async def tokens(db: str) -> Tokens:
    result = Tokens()
    for role in Role:
        staff, _ = await staff_service.create_staff(
            f"{role.value}@ccas.test", role, password="mot-de-passe-solide"
        )
        result[role.value] = await staff_service.issue_token(staff)
    return result

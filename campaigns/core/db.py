"""Database configuration, connection lifetime and migrations (tortoise-orm)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.migrations.api import migrate as tortoise_migrate

MODELS = ["campaigns.models"]
MIGRATIONS = "campaigns.migrations"


def normalise_url(url: str) -> str:
    if url.startswith("postgresql://"):
        return "postgres://" + url.removeprefix("postgresql://")
    return url


def tortoise_config(url: str) -> dict[str, Any]:
    url = normalise_url(url)
    connection: str | dict[str, Any] = url
    if url.startswith("postgres://"):
        # The pool must serve a web process or a worker's concurrent batches, not more.
        connection = url + ("&" if "?" in url else "?") + "minsize=1&maxsize=10"
    return {
        "connections": {"default": connection},
        "apps": {
            "models": {
                "models": MODELS,
                "default_connection": "default",
                "migrations": MIGRATIONS,
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def placeholders(count: int, conn: BaseDBAsyncClient | None = None) -> list[str]:
    """Query parameter marks for raw SQL: $1, $2 ... on PostgreSQL, ? on SQLite."""
    if on_postgres(conn):
        return [f"${i}" for i in range(1, count + 1)]
    return ["?"] * count


def on_postgres(conn: BaseDBAsyncClient | None = None) -> bool:
    """Whether a connection (the default one if none) is PostgreSQL: locks and bulk SQL differ."""
    conn = conn or Tortoise.get_connection("default")
    return conn.capabilities.dialect == "postgres"


async def migrate(url: str) -> None:
    """Apply every pending migration; a no-op on an up-to-date database."""
    await tortoise_migrate(config=tortoise_config(url))
    await Tortoise.close_connections()


async def init_db(url: str) -> None:
    await Tortoise.init(config=tortoise_config(url))


async def close_db() -> None:
    await Tortoise.close_connections()
    # tortoise caches SQL per connection *name*: a process that reopens "default" on
    # another engine (the tests switch between SQLite and PostgreSQL) must drop it.
    EXECUTOR_CACHE.clear()


@asynccontextmanager
async def database(url: str, *, run_migrations: bool = True) -> AsyncIterator[None]:
    if run_migrations:
        await migrate(url)
    await init_db(url)
    try:
        yield
    finally:
        await close_db()


def __getattr__(name: str) -> Any:
    # The tortoise CLI reads `campaigns.core.db.TORTOISE_ORM` (`tortoise -c ... makemigrations`);
    # built on demand from the one settings loader so importing this module reads nothing.
    if name == "TORTOISE_ORM":
        from campaigns.core.settings import load_settings

        return tortoise_config(load_settings().database_url)
    raise AttributeError(name)

"""What every sub-command shares: settings and a database for the length of one command."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

from campaigns.core.db import database
from campaigns.core.errors import DomainError
from campaigns.core.settings import Settings, load_settings


def run_with_db(body: Callable[[Settings], Awaitable[int]]) -> int:
    """Load settings, migrate and open the database, run `body`, report domain errors in French."""
    settings = load_settings()

    async def runner() -> int:
        async with database(settings.database_url):
            return await body(settings)

    try:
        return asyncio.run(runner())
    except DomainError as exc:
        print(f"Erreur : {exc.detail}", file=sys.stderr)
        return 1

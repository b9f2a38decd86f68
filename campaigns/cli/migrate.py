"""`campaigns migrate`: apply pending database migrations."""

from __future__ import annotations

import argparse
import asyncio

from campaigns.core.db import migrate
from campaigns.core.settings import load_settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "migrate",
        help="appliquer les migrations de la base",
        description=(
            "Crée ou met à jour le schéma de la base (CAMPAIGNS_DATABASE_URL). Sans effet sur "
            "une base déjà à jour ; à lancer une fois avant de démarrer le web et les workers."
        ),
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    asyncio.run(migrate(settings.database_url))
    print("Base de données à jour.")
    return 0

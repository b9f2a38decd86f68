"""`campaigns serve`: the web application (and, without Redis, the in-process worker)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from aiohttp import web

from campaigns import staff as staff_service
from campaigns.core.db import database
from campaigns.core.settings import Settings, load_settings, public_url_warning
from campaigns.models import Role, Staff
from campaigns.web.app import create_app
from workers.inprocess import InProcessQueue
from workers.runtime import build_runtime, close_runtime

log = logging.getLogger(__name__)
FIRST_ADMIN = "admin@ccas.local"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="lancer l'application web",
        description=(
            "Lance l'application web (pages du personnel, API, webhooks Vonage). Sans "
            "CAMPAIGNS_REDIS_URL, ce processus envoie aussi les campagnes lui-même. Sur une "
            "base vide, crée le compte administrateur et affiche son mot de passe à usage unique."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="adresse d'écoute")
    parser.add_argument("--port", type=int, default=8080, help="port d'écoute")
    parser.set_defaults(func=run)


LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    if settings.secret_key is None and args.host not in LOOPBACK:
        # Without a key of its own, sessions would be signed with a key anyone can read in
        # this source: fine on a developer's machine, never on a network.
        print(
            f"Erreur : écoute sur {args.host} refusée sans CAMPAIGNS_SECRET_KEY. Définissez "
            "une clé d'au moins 32 caractères aléatoires (par exemple : python3 -c "
            '"import secrets; print(secrets.token_urlsafe(48))"), ou écoutez sur 127.0.0.1.',
            file=sys.stderr,
        )
        return 2
    asyncio.run(serve(settings, args.host, args.port))
    return 0


async def ensure_first_admin() -> str | None:
    """On an empty staff table create an admin; return its one-time password."""
    if await Staff.exists():
        return None
    _, password = await staff_service.create_staff(FIRST_ADMIN, Role.ADMIN, name="Administrateur")
    return password


async def serve(settings: Settings, host: str, port: int) -> None:
    async with database(settings.database_url):
        password = await ensure_first_admin()
        runtime = await build_runtime(settings)
        if isinstance(runtime.queue, InProcessQueue):
            # No Redis: this process sends the campaigns itself, with the same job functions.
            await runtime.queue.start()
            print("Envoi des campagnes dans ce processus (pas de Redis).", flush=True)
        app = create_app(runtime)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        print(f"campaigns écoute sur http://{host}:{port}", flush=True)
        if warning := public_url_warning(settings, host, port):
            print(f"Attention : {warning}", file=sys.stderr, flush=True)
        if password is not None:
            # Last, so that it is what a newcomer sees without scrolling.
            print(
                f"Compte administrateur créé : {FIRST_ADMIN}\n"
                f"Mot de passe à usage unique (affiché une seule fois) : {password}",
                flush=True,
            )
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()
            await close_runtime(runtime)

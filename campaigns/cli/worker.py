"""`campaigns worker`: an arq worker sending campaigns (needs CAMPAIGNS_REDIS_URL)."""

from __future__ import annotations

import argparse
import asyncio
import sys


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="lancer un worker d'envoi (arq, nécessite CAMPAIGNS_REDIS_URL)",
        description=(
            "Lance un worker qui envoie les campagnes, traite les réponses et les tâches de "
            "chaque minute. Plusieurs workers se partagent Redis et la base de données."
        ),
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from campaigns.core.settings import load_settings
    from workers.resilience import ResilientWorker
    from workers.settings import worker_options

    settings = load_settings()
    if not settings.redis_url:
        print(
            "Erreur : le worker a besoin de Redis. Définissez CAMPAIGNS_REDIS_URL "
            "(par exemple redis://127.0.0.1:6379/0), ou lancez « campaigns serve » seul : "
            "sans Redis, l'application envoie elle-même les campagnes.",
            file=sys.stderr,
        )
        return 2
    options = worker_options(settings)
    # arq's Worker takes the current event loop when it is built.
    asyncio.set_event_loop(asyncio.new_event_loop())
    # It waits for Redis and PostgreSQL when they are away; only a signal stops it.
    worker = ResilientWorker(**options)
    worker.ctx["worker"] = worker
    print(f"Worker d'envoi démarré (file {settings.queue_name}).", flush=True)
    worker.run()
    return 0

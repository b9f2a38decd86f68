"""`campaigns reply NUMBER TEXT`: simulate an inbound SMS in console mode (no real SMS)."""

from __future__ import annotations

import argparse
import sys

from campaigns.cli.common import run_with_db
from campaigns.core.settings import Settings, load_settings
from campaigns.replies.inbox import LABEL_NAMES
from campaigns.replies.simulation import simulate_reply
from workers.runtime import build_runtime, close_runtime


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "reply",
        help="simuler une réponse SMS (mode console seulement)",
        description=(
            "Simule un SMS reçu du NUMÉRO, comme le webhook Vonage le recevrait : la réponse "
            "est rattachée à la personne, classée et orientée vers une file. N'existe qu'avec "
            "le fournisseur console (CAMPAIGNS_SMS_PROVIDER=console)."
        ),
    )
    parser.add_argument("number", metavar="NUMÉRO", help="numéro de l'expéditeur (06..., +33...)")
    parser.add_argument("text", metavar="TEXTE", help="texte du SMS, entre guillemets")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    if settings.sms_provider != "console":
        print(
            "Erreur : « campaigns reply » ne fonctionne qu'en mode console "
            "(CAMPAIGNS_SMS_PROVIDER=console) ; en production les réponses arrivent par Vonage.",
            file=sys.stderr,
        )
        return 2

    async def body(settings: Settings) -> int:
        runtime = await build_runtime(settings)
        try:
            reply = await simulate_reply(runtime, args.number, args.text)
        finally:
            await close_runtime(runtime)
        label = LABEL_NAMES.get(reply.label or "", reply.label or "?")
        who = f"personne n° {reply.person_id}" if reply.person_id else "expéditeur inconnu"
        where = f"situation n° {reply.escalation_id}" if reply.escalation_id else "aucune file"
        print(f"Réponse n° {reply.id} enregistrée ({who}) : {label} -> {where}.")
        return 0

    return run_with_db(body)

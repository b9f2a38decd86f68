"""`campaigns user add EMAIL --role ROLE [--password-stdin]`: staff accounts."""

from __future__ import annotations

import argparse
import sys

from campaigns import staff as staff_service
from campaigns.cli.common import run_with_db
from campaigns.core.settings import Settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "user",
        help="gérer les comptes du personnel",
        description=(
            "Gère les comptes du personnel (administrateurs, coordinateurs, travailleurs sociaux)."
        ),
    )
    actions = parser.add_subparsers(
        dest="user_command", required=True, metavar="ACTION", title="actions"
    )
    add = actions.add_parser(
        "add",
        help="créer un compte",
        description=(
            "Crée un compte et affiche un mot de passe à usage unique, à changer à la "
            "première connexion (sauf avec --password-stdin)."
        ),
    )
    add.add_argument("email", help="adresse e-mail de connexion")
    add.add_argument(
        "--role",
        required=True,
        choices=["admin", "coordinator", "caseworker", "benevole"],
        help="rôle du compte (benevole : les appels des campagnes où il est nommé, rien d'autre)",
    )
    add.add_argument("--name", default="", help="nom affiché")
    add.add_argument(
        "--queues",
        default=None,
        help="files travaillées, séparées par des virgules (urgence,rappel,triage)",
    )
    add.add_argument(
        "--password-stdin", action="store_true", help="lire le mot de passe sur l'entrée standard"
    )
    add.set_defaults(func=run_add)


def run_add(args: argparse.Namespace) -> int:
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
    queues = [q.strip() for q in args.queues.split(",") if q.strip()] if args.queues else None

    async def body(settings: Settings) -> int:
        staff, secret = await staff_service.create_staff(
            args.email, args.role, password=password, name=args.name, queues=queues
        )
        print(f"Compte créé : {staff.email} ({staff.role.value})")
        if password is None:
            print(f"Mot de passe à usage unique : {secret}")
        return 0

    return run_with_db(body)

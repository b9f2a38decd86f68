"""`campaigns demo`: fill an empty database with a synthetic French population."""

from __future__ import annotations

import argparse

from campaigns.cli.common import run_with_db
from campaigns.core.settings import Settings
from campaigns.registry.demo import fill_demo


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="remplir une base vide avec une population fictive (démonstration)",
        description=(
            "Remplit une base vide avec une population fictive, pour essayer le service. "
            "Les mobiles sont pris dans la plage réservée à la fiction par l'ARCEP : "
            "un envoi réel n'atteint personne."
        ),
    )
    parser.add_argument("--count", type=int, default=3000, help="nombre de personnes")
    parser.add_argument("--seed", type=int, default=2024, help="graine du tirage aléatoire")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    async def body(settings: Settings) -> int:
        by_segment = await fill_demo(args.count, seed=args.seed)
        print(f"{args.count} personnes fictives créées :")
        for segment, count in sorted(by_segment.items()):
            print(f"  {segment} : {count}")
        print("Aucun compte du personnel n'est créé : utilisez « campaigns user add ».")
        return 0

    return run_with_db(body)

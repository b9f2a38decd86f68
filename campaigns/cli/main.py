"""The `campaigns` command: one sub-command per module of campaigns.cli."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from campaigns.core.settings import SettingsError

QUIET_LOGGERS = ("vonage", "vonage_http_client", "urllib3", "requests", "aiosmtplib", "asyncpg")
COMMANDS = ["serve", "worker", "migrate", "import_register", "user", "demo", "classify"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="campaigns",
        description="Campagnes d'appel sortant pour les CCAS : registres, SMS, réponses, files.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="journal détaillé")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMANDE")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"campaigns.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"campaigns.cli.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Their DEBUG lines carry message texts, phone numbers and credentials: never logged.
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except SettingsError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

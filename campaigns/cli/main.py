"""The `campaigns` command: one sub-command per module of campaigns.cli."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Any, NoReturn

from campaigns.core.settings import SettingsError

QUIET_LOGGERS = ("vonage", "vonage_http_client", "urllib3", "requests", "aiosmtplib", "asyncpg")
COMMANDS = ["serve", "worker", "migrate", "import_register", "user", "demo", "classify", "reply"]


# argparse's own error sentences, as a French user should read them.
_ERRORS = (
    ("the following arguments are required", "arguments obligatoires manquants"),
    ("unrecognized arguments", "arguments inconnus"),
    ("invalid choice", "choix invalide"),
    ("choose from", "au choix"),
    ("expected one argument", "une valeur est attendue"),
    ("invalid int value", "nombre entier invalide"),
)


class FrenchHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's help in French, defaults shown ("par défaut : ...")."""

    def add_usage(self, usage: Any, actions: Any, groups: Any, prefix: str | None = None) -> None:
        super().add_usage(usage, actions, groups, "utilisation : " if prefix is None else prefix)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "%(default)" in text:
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return f"{text} (par défaut : %(default)s)"
        return text


class FrenchArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose headings, help option and errors speak French."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", FrenchHelpFormatter)
        kwargs["add_help"] = False
        super().__init__(*args, **kwargs)
        self._positionals.title = "arguments"
        self._optionals.title = "options"
        self.add_argument(
            "-h", "--help", action="help", default=argparse.SUPPRESS, help="afficher cette aide"
        )

    def error(self, message: str) -> NoReturn:
        for english, french in _ERRORS:
            message = message.replace(english, french)
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog} : erreur : {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = FrenchArgumentParser(
        prog="campaigns",
        description="Campagnes d'appel sortant pour les CCAS : registres, SMS, réponses, files.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="journal détaillé")
    subparsers = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="COMMANDE",
        title="commandes",
        parser_class=FrenchArgumentParser,
    )
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

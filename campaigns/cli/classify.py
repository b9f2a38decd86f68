"""The `campaigns classify` sub-command: classify reply texts as the webhook would."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

from campaigns.rules.classification import RuleFileError, classify, default_rules


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `classify [--explain] [TEXT ...]` to the main parser's sub-commands."""
    parser = subparsers.add_parser(
        "classify",
        help="classer des réponses SMS (opt_out, callback, distress, thanks, other)",
        description=(
            "Classe chaque TEXTE (ou chaque ligne de l'entrée standard) comme une réponse "
            "SMS : une ligne par texte, l'étiquette d'abord."
        ),
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="indiquer la règle qui a décidé et une demande de désinscription (STOP) associée",
    )
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="réponses à classer")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        rules = default_rules()
    except RuleFileError as exc:
        print(f"Erreur : {exc}", file=sys.stderr)
        return 2
    texts = args.texts if args.texts else _stdin_lines()
    for text in texts:
        result = classify(text, rules)
        # One text per output line, whatever it holds.
        shown = " ".join(text.split())
        line = f"{result.label}\t{shown}"
        if args.explain:
            line += f"\trègle : {result.rule}"
            if result.opt_out_requested and result.label != "opt_out":
                line += " ; demande aussi la désinscription (STOP)"
        print(line)
    return 0


def _stdin_lines() -> Iterator[str]:
    # Streamed so a long file prints as it goes; blank lines are not texts.
    return (line.rstrip("\r\n") for line in sys.stdin if line.strip())

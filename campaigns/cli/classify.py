"""The `campaigns classify` sub-command: decide on reply texts as the worker would.

Each text goes through the decision policy (rules and learned model together,
campaigns.rules.reply_policy), not through the bare rules: what it prints is what
routing will act on.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

from campaigns.core.settings import load_settings
from campaigns.rules.classification import LABELS, RuleFileError, RuleSet, configured_rules
from campaigns.rules.reply_model import Example, ReplyModel, default_model, read_examples
from campaigns.rules.reply_policy import ReplyDecision, decide

# Strongest n-grams shown by --explain.
EXPLAIN_FEATURES = 5
_SOURCES = {"rule": "règle", "model": "modèle"}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `classify [--explain] [--evaluate FICHIER] [TEXT ...]` to the sub-commands."""
    parser = subparsers.add_parser(
        "classify",
        help="classer des réponses SMS (opt_out, callback, distress, thanks, other)",
        description=(
            "Classe chaque TEXTE (ou chaque ligne de l'entrée standard) comme une réponse "
            "SMS, avec les règles et le modèle appris ensemble (la décision qu'appliquera "
            "le traitement des réponses) : une ligne par texte, l'étiquette d'abord."
        ),
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help=(
            "indiquer les règles déclenchées, les probabilités du modèle, ses indices les "
            "plus forts et une demande de désinscription (STOP) associée"
        ),
    )
    parser.add_argument(
        "--evaluate",
        metavar="FICHIER",
        type=Path,
        help=(
            "évaluer la décision sur un fichier CSV étiqueté (« label;text », une ligne "
            "d'en-tête) : exactitude, précision et rappel par étiquette, matrice de "
            "confusion, et chaque détresse qui n'arriverait pas en file urgence"
        ),
    )
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="réponses à classer")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        rules = configured_rules(load_settings().reply_rules)
    except RuleFileError as exc:
        print(f"Erreur : {exc}", file=sys.stderr)
        return 2
    model = default_model()
    if getattr(args, "evaluate", None) is not None:
        return _evaluate(args.evaluate, rules, model)
    texts = args.texts if args.texts else _stdin_lines()
    for text in texts:
        decision = decide(text, rules, model)
        # One text per output line, whatever it holds.
        shown = " ".join(text.split())
        line = f"{decision.label}\t{shown}"
        if args.explain:
            line += "\t" + explain(decision, text, model)
        print(line)
    return 0


def explain(decision: ReplyDecision, text: str, model: ReplyModel) -> str:
    """One line of French: rules, model probabilities, strongest n-grams, flags."""
    parts = [f"règle : {decision.rule}"]
    others = [rule for rule in decision.rules_fired if rule != decision.rule]
    if others:
        parts[0] += f" (aussi : {', '.join(others)})"
    if decision.opt_out_requested and decision.label != "opt_out":
        parts.append("demande aussi la désinscription (STOP)")
    ranked = sorted(decision.probabilities.items(), key=lambda item: -item[1])
    parts.append("modèle : " + ", ".join(f"{label} {p:.2f}" for label, p in ranked))
    features = model.top_features(text, decision.label, EXPLAIN_FEATURES)
    if features:
        parts.append(
            f"indices {decision.label} : "
            + ", ".join(f"{name} {weight:+.2f}" for name, weight in features)
        )
    if abs(decision.distress_probability - decision.probabilities["distress"]) > 0.005:
        parts.append(
            f"détresse jugée sans les passages niés ou passés : {decision.distress_probability:.2f}"
        )
    if decision.distress_source:
        sources = [_SOURCES[source] for source in decision.distress_source]
        parts.append("détresse par : " + " et ".join(sources))
    flags = [
        name
        for name, on in (
            ("désinscription automatique", decision.auto_opt_out),
            ("archivable sans lecture", decision.archive_ok),
            ("incertain : à vérifier", decision.uncertain),
            ("réabonnement (START)", decision.resubscribe),
        )
        if on
    ]
    parts.extend(flags)
    return " ; ".join(parts)


def _evaluate(path: Path, rules: RuleSet, model: ReplyModel) -> int:
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            examples = read_examples(handle)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"Erreur : fichier {path} illisible : {exc}", file=sys.stderr)
        return 2
    unknown = sorted({label for label, _ in examples} - set(LABELS))
    if unknown:
        print(
            f"Erreur : {path} : étiquette inconnue {', '.join(unknown)} "
            f"(attendu : {', '.join(LABELS)})",
            file=sys.stderr,
        )
        return 2
    if not examples:
        print(f"Erreur : {path} ne contient aucune réponse étiquetée", file=sys.stderr)
        return 2
    decisions = [decide(text, rules, model) for _, text in examples]
    for line in evaluation_report(path.name, examples, decisions):
        print(line)
    return 0


def evaluation_report(
    name: str, examples: Sequence[Example], decisions: Sequence[ReplyDecision]
) -> list[str]:
    """The --evaluate report, line by line (French)."""
    confusion = Counter(
        (want, decision.label) for (want, _), decision in zip(examples, decisions, strict=True)
    )
    total = len(examples)
    hits = sum(confusion[(label, label)] for label in LABELS)
    lines = [f"{name} : {total} réponses", f"exactitude : {hits / total:.1%} ({hits}/{total})"]
    lines.append(f"{'étiquette':10} {'précision':>10} {'rappel':>8} {'effectif':>9}")
    for label in LABELS:
        decided = sum(n for (_, got), n in confusion.items() if got == label)
        support = sum(n for (want, _), n in confusion.items() if want == label)
        precision = f"{confusion[(label, label)] / decided:.1%}" if decided else "-"
        recall = f"{confusion[(label, label)] / support:.1%}" if support else "-"
        lines.append(f"{label:10} {precision:>10} {recall:>8} {support:>9}")
    lines.append("matrice de confusion (lignes : attendu, colonnes : décidé)")
    lines.append(" " * 10 + "".join(f"{label:>10}" for label in LABELS))
    for want in LABELS:
        lines.append(f"{want:10}" + "".join(f"{confusion[(want, got)]:>10}" for got in LABELS))
    auto_wrong = sum(
        1
        for (want, _), decision in zip(examples, decisions, strict=True)
        if decision.auto_opt_out and want != "opt_out"
    )
    auto = sum(decision.auto_opt_out for decision in decisions)
    lines.append(f"désinscriptions automatiques : {auto} (dont {auto_wrong} à tort)")
    missed = [
        (decision.label, text)
        for (want, text), decision in zip(examples, decisions, strict=True)
        if want == "distress" and decision.label != "distress"
    ]
    lines.append(f"détresses qui n'arriveraient pas en file urgence : {len(missed)}")
    lines.extend(f"  {label}\t{' '.join(text.split())}" for label, text in missed)
    return lines


def _stdin_lines() -> Iterator[str]:
    # Streamed so a long file prints as it goes; blank lines are not texts.
    return (line.rstrip("\r\n") for line in sys.stdin if line.strip())

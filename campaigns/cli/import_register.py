"""`campaigns import FILE --segment CODE`: import a register and print its report in French."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from campaigns.cli.common import run_with_db
from campaigns.core.audit import Actor
from campaigns.core.errors import Invalid
from campaigns.core.settings import Settings
from campaigns.registry.importer import (
    ImportReport,
    Progress,
    check_segment,
    import_register,
    parse_mapping,
)
from campaigns.registry.register_issues import REASONS

# Below this size an import takes well under a second: no progress bar.
PROGRESS_MIN_BYTES = 100_000
LABELS = {**REASONS, "value_too_long": "Valeur trop longue pour la base"}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "import",
        help="importer un registre CSV dans un segment",
        description="Importe un registre (CSV ; ou , en UTF-8 ou Windows-1252) dans un segment : "
        "domicilies, aides_facultatives, animations, registre_fragiles ou un code personnalisé.",
    )
    parser.add_argument("file", metavar="FICHIER", type=Path)
    parser.add_argument("--segment", required=True, metavar="CODE")
    parser.add_argument("--json", action="store_true", help="afficher le rapport en JSON")
    parser.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="COLONNE=CHAMP",
        help="indiquer le champ d'une colonne au titre inhabituel (ex. « Nom usuel=last_name »)",
    )
    parser.add_argument("--dry-run", action="store_true", help="simuler sans rien écrire")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        segment = check_segment(args.segment)
        mapping = parse_mapping(args.map) or None
    except Invalid as error:
        print(f"Erreur : {error.detail}", file=sys.stderr)
        return 2
    try:
        data = args.file.read_bytes()
    except OSError as error:
        print(f"Erreur : impossible de lire {args.file} ({error.strerror})", file=sys.stderr)
        return 1
    show_progress = sys.stdout.isatty() and not args.json and len(data) >= PROGRESS_MIN_BYTES

    async def body(settings: Settings) -> int:
        with progress_bar(show_progress) as progress:
            report = await import_register(
                data,
                segment=segment,
                actor=Actor.cli(),
                filename=args.file.name,
                mapping_overrides=mapping,
                dry_run=args.dry_run,
                progress=progress,
            )
        if args.json:
            print(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
        else:
            print(human_report(report))
        return 0

    return run_with_db(body)


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Progress | None]:
    if not enabled:
        yield None
        return
    from rich import progress as rich_progress

    with rich_progress.Progress(
        rich_progress.TextColumn("Import"),
        rich_progress.BarColumn(),
        rich_progress.TaskProgressColumn(),
        rich_progress.TimeRemainingColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task("import", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


def human_report(report: ImportReport) -> str:
    lines = []
    if report.dry_run:
        lines.append("Simulation (--dry-run) : rien n'a été écrit.")
    lines += [
        f"Import de {report.filename} dans le segment « {report.segment} » "
        f"(encodage {report.encoding}, {report.rows} lignes de données)",
        f"  personnes créées : {report.created}",
        f"  mises à jour : {report.updated}",
        f"  inchangées : {report.unchanged}",
        f"  lignes rejetées : {len(report.rejected)}",
        f"  avertissements : {len(report.warnings)}",
    ]
    if report.rejected:
        lines.append("Lignes rejetées (non importées) :")
        lines += [
            f"  ligne {i.line} : {LABELS.get(i.reason, i.reason)} — {i.detail}"
            for i in report.rejected
        ]
    if report.warnings:
        lines.append("Avertissements (lignes importées) :")
        lines += [
            f"  ligne {i.line} : {LABELS.get(i.reason, i.reason)} — {i.detail}"
            for i in report.warnings
        ]
    return "\n".join(lines)

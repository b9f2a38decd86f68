"""Reading a CCAS register exported as CSV into checked rows and a per-line report (no database).

The header may sit below a title; the delimiter is the one that makes it a header; a
line number is the line a spreadsheet shows (a quoted cell with line breaks is one).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date
from itertools import islice

from campaigns.registry.register_columns import (
    check_overrides,
    layout_of,
    normalized_overrides,
)
from campaigns.registry.register_encoding import decode_register
from campaigns.registry.register_issues import RegisterFileError, RowIssue
from campaigns.registry.register_rows import RegisterRow, RowContext, read_row, reject, warn

__all__ = ["ParsedRegister", "parse_register"]


@dataclass(slots=True)
class ParsedRegister:
    """The outcome of reading a register file, before anything touches the database."""

    rows: list[RegisterRow]
    rejected: list[RowIssue]
    warnings: list[RowIssue]
    encoding: str
    delimiter: str
    columns: dict[str, str]  # header as written -> field
    total_lines: int  # last line number, header and blank lines included
    header_line: int = 1


# A quoted cell spanning more lines than this is an unclosed quote, not an address.
_MAX_RECORD_LINES = 20
_DELIMITERS = (";", "\t", ",")
_HEADER_SEARCH_RECORDS = 10  # a title or blank lines may precede the header


def _find_header(text: str, overrides: dict[str, str]) -> tuple[str, int, list[str]]:
    """(delimiter, 0-based record index of the header, header cells)."""
    head = "".join(islice(io.StringIO(text, newline=""), 50))
    best: tuple[int, str, int, list[str]] | None = None
    for delimiter in _DELIMITERS:
        reader = csv.reader(io.StringIO(head, newline=""), delimiter=delimiter)
        try:
            records = list(islice(reader, _HEADER_SEARCH_RECORDS))
        except csv.Error:
            continue
        for index, record in enumerate(records):
            if not any(cell.strip() for cell in record):
                continue
            layout = layout_of(record, overrides)
            if "last_name" in layout.fields:
                score = len(layout.columns)
                if best is None or score > best[0]:
                    best = (score, delimiter, index, record)
                break
    if best is None:
        raise RegisterFileError("missing_column", _missing_name_message(head))
    _, delimiter, index, record = best
    return delimiter, index, record


def _missing_name_message(head: str) -> str:
    first_line = next((line for line in head.splitlines() if line.strip()), "")
    delimiter = max(_DELIMITERS, key=first_line.count)
    found = [cell.strip() for cell in first_line.split(delimiter) if cell.strip()]
    return (
        "Colonne du nom introuvable : la première ligne doit contenir les titres des colonnes, "
        "dont « Nom » (ou « Nom de famille »), et si possible « Prénom », « Date de naissance », "
        "« Téléphone », « Courriel », « N° dossier ». "
        f"Titres trouvés : {', '.join(f'« {c} »' for c in found[:12]) or 'aucun'}. "
        "Une colonne au titre différent peut être indiquée avec --map « Titre=last_name »."
    )


def parse_register(
    data: bytes,
    *,
    default_region: str = "FR",
    mapping_overrides: dict[str, str] | None = None,
    today: date | None = None,
) -> ParsedRegister:
    """Every row of a register file, checked; rejected rows and warnings with their line."""
    text, encoding = decode_register(data)
    overrides = normalized_overrides(mapping_overrides)
    delimiter, header_index, header = _find_header(text, overrides)
    check_overrides(mapping_overrides, header)
    layout = layout_of(header, overrides)
    ctx = RowContext(layout, default_region, today or date.today())
    header_line = header_index + 1
    if layout.unknown:
        shown = ", ".join(f"« {name} »" for name in layout.unknown)
        warn(ctx, header_line, "unknown_columns", f"Colonnes ignorées : {shown}")
    if layout.duplicates:
        shown = ", ".join(f"« {name} »" for name in layout.duplicates)
        warn(ctx, header_line, "duplicate_column", f"Colonnes ignorées : {shown}")

    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    # Spreadsheet line = record number: a quoted cell with line breaks is one line in a
    # spreadsheet, and a blank line is an empty spreadsheet line.
    line = 0
    physical = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error:
            line += 1
            physical = reader.line_num
            if line > header_line:
                reject(ctx, line, "bad_quotes", "Guillemet mal placé ou jamais fermé")
            continue
        line += 1
        span, physical = reader.line_num - physical, reader.line_num
        if line <= header_line or not any(cell.strip() for cell in cells):
            continue
        if span > _MAX_RECORD_LINES:
            reject(
                ctx,
                line,
                "bad_quotes",
                f"Une cellule entre guillemets s'étend sur {span} lignes du fichier : "
                "guillemet probablement jamais fermé",
            )
            continue
        read_row(ctx, line, cells)
    return ParsedRegister(
        rows=ctx.rows,
        rejected=ctx.rejected,
        warnings=ctx.warnings,
        encoding=encoding,
        delimiter=delimiter,
        columns=layout.columns,
        total_lines=line,
        header_line=header_line,
    )

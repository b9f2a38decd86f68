"""What reading a register can report: per-line reason codes, file errors, issues on a line."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FILE_ERRORS", "REASONS", "RegisterFileError", "RowIssue"]

# Every per-line reason code, as the import report shows it (stable, snake_case).
REASONS: dict[str, str] = {
    # Rejected: the row is not imported.
    "missing_name": "Nom manquant",
    "invalid_birth_date": "Date de naissance invalide",
    "wrong_column_count": "Nombre de cellules incorrect : colonnes décalées",
    "bad_quotes": "Guillemets mal placés : ligne illisible",
    "duplicate_in_file": "Personne déjà présente plus haut dans le fichier",
    # Warnings: the row is imported, without the faulty value.
    "no_phone": "Aucun numéro de téléphone",
    "invalid_phone": "Numéro de téléphone invalide, ignoré",
    "landline_only": "Pas de portable : pas de SMS possible, fixe gardé pour les appels",
    "foreign_number": "Numéro étranger",
    "invalid_email": "Adresse e-mail invalide, ignorée",
    "invalid_date": "Date invalide, ignorée",
    "possible_duplicate": "Doublon possible : mêmes nom, prénom et date de naissance",
    # File-level warnings, reported on the header line.
    "unknown_columns": "Colonnes non reconnues, ignorées",
    "duplicate_column": "Colonne en double, ignorée",
}

# Errors that stop the whole import.
FILE_ERRORS: dict[str, str] = {
    "empty_file": "Le fichier est vide.",
    "not_csv": "Ce fichier est un classeur, pas un CSV.",
    "unreadable_encoding": "Encodage du fichier illisible.",
    "missing_column": "Colonne obligatoire absente.",
    "invalid_mapping": "Correspondance de colonnes invalide.",
}


class RegisterFileError(Exception):
    """The file as a whole cannot be imported; `message` is shown to the CCAS user."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class RowIssue:
    """A rejected row or a warning, on the line a spreadsheet shows (header = line 1)."""

    line: int
    reason: str
    detail: str

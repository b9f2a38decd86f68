"""Shared by the register-reading tests: a small file built line by line, read at a fixed date."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from campaigns.registry.register_file import ParsedRegister, parse_register

DATA = Path(__file__).resolve().parent / "data"
HEADER = "N° dossier;Nom;Prénom;Date de naissance;Téléphone;Courriel;Quartier;Référent"
TODAY = date(2026, 1, 15)


def csv_bytes(*lines: str, encoding: str = "utf-8", newline: str = "\r\n") -> bytes:
    return (newline.join(lines) + newline).encode(encoding)


def parse(*lines: str, **options: object) -> ParsedRegister:
    return parse_register(csv_bytes(*lines), today=TODAY, **options)  # type: ignore[arg-type]


def issues(found: list) -> list[tuple[int, str]]:
    return [(issue.line, issue.reason) for issue in found]

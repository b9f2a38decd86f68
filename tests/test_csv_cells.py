"""Exports hold text, never formulas; register e-mails that look like formulas are refused."""

from __future__ import annotations

import pytest

from campaigns.core.csv_cells import safe_cell, safe_row
from campaigns.registry.register_values import normalize_email


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1@evil.fr", "'=1+1@evil.fr"),
        ("+33612345678", "'+33612345678"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=cmd", "'\t=cmd"),
        ("\r=cmd", "'\r=cmd"),
        ("Bonjour", "Bonjour"),
        ("", ""),
        (12, 12),
        (None, None),
    ],
)
def test_formula_cells_become_text(value: object, expected: object) -> None:
    assert safe_cell(value) == expected


def test_rows_keep_their_shape() -> None:
    assert safe_row(["=A1", "ok", 3]) == ["'=A1", "ok", 3]


@pytest.mark.parametrize(
    "text",
    ["=1+1@evil.fr", "+x@evil.fr", "a@b", "a..b@c.fr", "@evil.fr", "a@-evil.fr", "a b@c.fr"],
)
def test_formula_like_or_broken_emails_are_refused(text: str) -> None:
    assert normalize_email(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Jeanne.Martin@Example.fr", "jeanne.martin@example.fr"),
        ("mailto:j.o'neil+ccas@mairie-amiens.fr", "j.o'neil+ccas@mairie-amiens.fr"),
        ("élise@orange.fr", "élise@orange.fr"),
    ],
)
def test_ordinary_emails_pass(text: str, expected: str) -> None:
    assert normalize_email(text) == expected

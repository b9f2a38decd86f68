"""Reading register CSV files: each cell (dates, names, phones, e-mails, extras) and duplicates."""

from __future__ import annotations

from datetime import date

import pytest

from campaigns.registry.register_file import parse_register
from campaigns.registry.register_issues import REASONS
from campaigns.registry.register_values import DateError, identity_key, parse_french_date
from campaigns.rules.phones import Phone, PhoneKind
from tests.register_support import TODAY, csv_bytes, issues, parse

# --- Cells -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("05/06/1948", date(1948, 6, 5)),
        ("5/6/1948", date(1948, 6, 5)),
        ("05-06-1948", date(1948, 6, 5)),
        ("05.06.1948", date(1948, 6, 5)),
        ("1948-06-05", date(1948, 6, 5)),
        ("05/06/1948 00:00", date(1948, 6, 5)),
        ("1948-06-05 00:00:00", date(1948, 6, 5)),
        (" 29/02/1952 ", date(1952, 2, 29)),
    ],
)
def test_dates(text: str, expected: date) -> None:
    assert parse_french_date(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "31/02/1950",
        "29/02/1951",
        "32/01/1950",
        "00/01/1950",
        "05/13/1948",
        "05/06/48",
        "hier",
        "1948/06/05",
        "17456",
    ],
)
def test_impossible_or_unreadable_dates(text: str) -> None:
    with pytest.raises(DateError):
        parse_french_date(text)


def test_birth_dates_in_rows() -> None:
    parsed = parse(
        "Nom;Date de naissance",
        "A;31/02/1950",  # 2
        "B;16/01/2026",  # 3: after TODAY
        "C;01/01/1899",  # 4
        "D;05/06/48",  # 5: two-digit year
        "E;",  # 6: unknown birth date is allowed
        "F;15/01/2026",  # 7
    )
    assert issues(parsed.rejected) == [(n, "invalid_birth_date") for n in (2, 3, 4, 5)]
    assert "n'existe pas" in parsed.rejected[0].detail
    assert "futur" in parsed.rejected[1].detail
    assert "quatre chiffres" in parsed.rejected[3].detail
    assert [(row.line, row.birth_date) for row in parsed.rows] == [(6, None), (7, TODAY)]


def test_names_and_other_cells_are_cleaned() -> None:
    parsed = parse(
        "Civilité;Nom;Prénom;Courriel;Quartier;Référent",
        "madame ; de  LA\u00a0Tour ; Marie-Anne ;Marie.Tour@Example.ORG ; Centre-ville "
        ";A.Nguyen@CCAS.example",
        "M;Durand;Louis;;;Mme Petit",
        "Dr;Leroy;Anne;;;",
    )
    first, second, third = parsed.rows
    assert (first.civility, first.last_name, first.first_name) == (
        "Mme",
        "de LA Tour",
        "Marie-Anne",
    )
    assert (first.email, first.district) == ("marie.tour@example.org", "Centre-ville")
    assert first.referent_email == "a.nguyen@ccas.example"
    assert (second.civility, second.referent_email) == ("M.", None)
    assert second.extra == {"referent_name": "Mme Petit"}
    assert (third.civility, third.email, third.district) == ("Dr", None, None)


@pytest.mark.parametrize(
    ("phone", "reasons"),
    [
        ("06 12 34 56 78", []),
        ("0692 12 34 56", []),
        ("06 12 34 56 78 / 01 45 67 89 10", []),
        ("", ["no_phone"]),
        ("pas de tél", ["no_phone"]),
        ("?", ["no_phone"]),
        ("06 46530", ["invalid_phone"]),
        ("01 45 67 89 10", ["landline_only"]),
        ("09 70 12 34 56", ["landline_only"]),
        ("06 46530 / 01 45 67 89 10", ["invalid_phone", "landline_only"]),
        ("+269 321 23 45", ["foreign_number"]),
        ("+44 20 7946 0958", ["landline_only", "foreign_number"]),
    ],
)
def test_phone_warnings(phone: str, reasons: list[str]) -> None:
    parsed = parse("Nom;Téléphone", f'Martin;"{phone}"')
    assert len(parsed.rows) == 1
    assert [issue.reason for issue in parsed.warnings] == reasons
    assert all(issue.line == 2 for issue in parsed.warnings)


def test_phone_warning_details() -> None:
    parsed = parse("Nom;Téléphone", "A;pas de tél", "B;06 46530")
    assert parsed.warnings[0].detail == "Aucun numéro de téléphone (mention « pas de tél »)"
    assert parsed.warnings[1].detail == "Numéro invalide ignoré : « 06 46530 »"


def test_landline_only_row_keeps_the_landline_for_calls() -> None:
    (row,) = parse("Nom;Téléphone", "Martin;09 70 12 34 56").rows
    assert row.mobile is None
    assert row.landline == Phone("+33970123456", PhoneKind.OTHER, "FR")
    assert row.other_phones == ()


def test_default_region_is_the_ccas_region() -> None:
    data = csv_bytes("Nom;Téléphone", "Martin;0269 61 23 45")
    assert parse_register(data).rows[0].landline.e164 == "+33269612345"  # type: ignore[union-attr]
    mayotte = parse_register(data, default_region="YT").rows[0].landline
    assert mayotte == Phone("+262269612345", PhoneKind.LANDLINE, "YT")


@pytest.mark.parametrize(
    ("email", "kept"),
    [
        ("jeanne.martin@example.org", "jeanne.martin@example.org"),
        ("Jeanne.Martin@Example.ORG", "jeanne.martin@example.org"),
        ("jeanne at example.org", None),
        ("jeanne@example", None),
        ("jeanne@@example.org", None),
        ("jeanne@example..org", None),
        ("a@b.fr; c@d.fr", None),
    ],
)
def test_emails(email: str, kept: str | None) -> None:
    parsed = parse("Nom;Téléphone;Courriel", f'Martin;06 12 34 56 78;"{email}"')
    assert parsed.rows[0].email == kept
    assert issues(parsed.warnings) == ([] if kept else [(2, "invalid_email")])


def test_fragile_register_columns_go_to_extra() -> None:
    parsed = parse(
        "Nom;Prénom;Adresse;Catégorie;Inscrit par;Date d'accusé;Prochaine révision;"
        "Contact d'urgence;Service d'aide à domicile",
        "Martin;Jeanne;3 rue des Lilas;65 ans et plus;tiers;03/06/2024;2025-06-01;"
        "Fille 06 12 34 56 78;ADMR",
        "Durand;Louis;;handicap;lui-même;31/02/2024;;;",
    )
    first, second = parsed.rows
    assert first.extra == {
        "address": "3 rue des Lilas",
        "category": "65 ans et plus",
        "registered_by": "tiers",
        "acknowledged_on": date(2024, 6, 3),
        "next_review_on": date(2025, 6, 1),
        "emergency_contact": "Fille 06 12 34 56 78",
        "home_care_service": "ADMR",
    }
    assert second.extra == {"category": "handicap", "registered_by": "lui-même"}
    assert issues(parsed.warnings) == [(3, "invalid_date")]


# --- Duplicates ------------------------------------------------------------------------------


def test_identity_key_ignores_case_accents_and_punctuation() -> None:
    born = date(1999, 1, 17)
    assert identity_key("LÉVY", "Aimée", born) == identity_key(" levy ", "AIMEE", born)
    assert identity_key("Le Gall", "Anne-Marie", born) == identity_key(
        "LE-GALL", "anne marie", born
    )
    assert identity_key("Lévy", "Aimée", born) != identity_key("Lévy", "Aimée", None)


def test_duplicates_in_one_file() -> None:
    parsed = parse(
        "N° dossier;Nom;Prénom;Date de naissance",
        "D1;Martin;Jeanne;01/02/1940",  # 2
        "D1;Martin;Jeanne;01/02/1940",  # 3: same dossier again
        ";MARTIN;Jéanne;01/02/1940",  # 4: same person, no dossier number
        "D2;Durand;Louis;03/04/1950",  # 5
        "D3;Durand;Louis;03/04/1950",  # 6: two dossiers: kept, flagged
        ";Petit;Jean;",  # 7
        ";Petit;Jean;",  # 8: without a birth date, names alone do not match
        "D1;Leroy;Anne;05/06/1960",  # 9: a dossier number used for someone else
    )
    assert [row.line for row in parsed.rows] == [2, 5, 6, 7, 8]
    assert issues(parsed.rejected) == [
        (3, "duplicate_in_file"),
        (4, "duplicate_in_file"),
        (9, "duplicate_in_file"),
    ]
    assert [issue.detail for issue in parsed.rejected] == [
        "Même n° de dossier qu'à la ligne 2",
        "Mêmes nom, prénom et date de naissance qu'à la ligne 2",
        "Même n° de dossier qu'à la ligne 2",
    ]
    assert issues(parsed.warnings) == [(6, "possible_duplicate")]


def test_every_reason_has_a_french_text() -> None:
    for code, text in REASONS.items():
        assert code.islower() and " " not in code
        assert text

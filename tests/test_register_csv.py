"""Reading register CSV files: encodings, delimiters, headers, rows, lines, sample reports."""

from __future__ import annotations

import random
import time
from datetime import date
from pathlib import Path

import pytest

from campaigns.registry.register_csv import (
    REASONS,
    DateError,
    ParsedRegister,
    RegisterFileError,
    decode_register,
    identity_key,
    parse_french_date,
    parse_register,
)
from campaigns.rules.phones import Phone, PhoneKind

DATA = Path("/work/shared/data")
HEADER = "N° dossier;Nom;Prénom;Date de naissance;Téléphone;Courriel;Quartier;Référent"
TODAY = date(2026, 1, 15)


def csv_bytes(*lines: str, encoding: str = "utf-8", newline: str = "\r\n") -> bytes:
    return (newline.join(lines) + newline).encode(encoding)


def parse(*lines: str, **options: object) -> ParsedRegister:
    return parse_register(csv_bytes(*lines), today=TODAY, **options)  # type: ignore[arg-type]


def issues(found: list) -> list[tuple[int, str]]:
    return [(issue.line, issue.reason) for issue in found]


# --- Encodings ------------------------------------------------------------------------------

TEXT = "Nom;Prénom;Quartier\r\nLEFÈVRE;Hélène;Œuvre – Saint-Acheul €\r\n"


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (TEXT.encode("utf-8-sig"), "utf-8-sig"),
        (TEXT.encode("utf-8"), "utf-8"),
        (TEXT.encode("cp1252"), "cp1252"),
        (TEXT.encode("utf-16"), "utf-16"),  # Excel's "Texte Unicode": BOM, little-endian
        (b"\xfe\xff" + TEXT.encode("utf-16-be"), "utf-16"),
    ],
)
def test_decode_known_encodings(data: bytes, encoding: str) -> None:
    assert decode_register(data) == (TEXT, encoding)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty_file"),
        (b"\r\n  \r\n", "empty_file"),
        (b"\xef\xbb\xbf\r\n", "empty_file"),
        (TEXT.encode("utf-16-le"), "unreadable_encoding"),  # UTF-16 without its BOM
        (random.Random(7).randbytes(4000), "unreadable_encoding"),
        (b"\x00\x01\x02\x03binary" * 50, "unreadable_encoding"),
        (b"PK\x03\x04\x14\x00\x06\x00" + b"x" * 100, "not_csv"),  # an .xlsx
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"x" * 100, "not_csv"),  # an .xls
    ],
)
def test_decode_refuses_what_is_not_text(data: bytes, code: str) -> None:
    with pytest.raises(RegisterFileError) as caught:
        decode_register(data)
    assert caught.value.code == code
    assert caught.value.message  # French text for the user


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-8", "cp1252", "utf-16"])
def test_every_encoding_gives_the_same_rows(encoding: str) -> None:
    data = csv_bytes(HEADER, "D1;LÉVY;Aimée;17/01/1999;06 12 34 56 78;;Étouvie;", encoding=encoding)
    parsed = parse_register(data, today=TODAY)
    assert parsed.encoding == encoding
    (row,) = parsed.rows
    assert (row.last_name, row.first_name, row.district) == ("LÉVY", "Aimée", "Étouvie")


# --- Delimiters and headers ------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [";", ",", "\t"])
def test_delimiter_is_read_from_the_header(delimiter: str) -> None:
    header = delimiter.join(["Nom", "Prénom", "Téléphone"])
    row = delimiter.join(["Martin", "Jeanne", "06 12 34 56 78"])
    parsed = parse(header, row)
    assert parsed.delimiter == delimiter
    assert parsed.rows[0].mobile == Phone("+33612345678", PhoneKind.MOBILE, "FR")


HEADERS = [
    ("N° dossier", "external_ref"),
    ("Numéro de dossier", "external_ref"),
    ("No dossier", "external_ref"),
    ("NO. DOSSIER", "external_ref"),
    ("Dossier", "external_ref"),
    ("Nom", "last_name"),
    ("NOM", "last_name"),
    ("Nom de famille", "last_name"),
    ("  nom  ", "last_name"),
    ("Prénom", "first_name"),
    ("PRENOM", "first_name"),
    ("Civilité", "civility"),
    ("Titre", "civility"),
    ("Date de naissance", "birth_date"),
    ("Né(e) le", "birth_date"),
    ("DDN", "birth_date"),
    ("Téléphone", "phone"),
    ("Tél.", "phone"),
    ("Tél. portable", "phone"),
    ("Portable", "phone"),
    ("Mobile", "phone"),
    ("Tel fixe", "phone"),
    ("Téléphone 2", "phone"),
    ("N° de téléphone", "phone"),
    ("Courriel", "email"),
    ("E-mail", "email"),
    ("Email", "email"),
    ("Mail", "email"),
    ("Adresse mail", "email"),
    ("Quartier", "district"),
    ("Secteur", "district"),
    ("Référent", "referent"),
    ("Travailleur social", "referent"),
    ("Référent social", "referent"),
    ("Adresse", "address"),
    ("Catégorie", "category"),
    ("Inscrit par", "registered_by"),
    ("Date d'accusé", "acknowledged_on"),
    ("Accusé de réception", "acknowledged_on"),
    ("Prochaine révision", "next_review_on"),
    ("Contact d'urgence", "emergency_contact"),
    ("Service d'aide à domicile", "home_care_service"),
]


@pytest.mark.parametrize(("header", "field"), HEADERS)
def test_header_variants(header: str, field: str) -> None:
    line = header if field == "last_name" else f"Nom;{header}"
    parsed = parse(line, "Martin" if field == "last_name" else "Martin;x")
    assert parsed.columns[header.strip()] == field
    assert [issue for issue in parsed.warnings if issue.line == 1] == []


def test_unknown_columns_are_reported_on_the_header_line() -> None:
    parsed = parse("Nom;Observations;Prénom;Taille", "Martin;rien;Jeanne;1m60")
    assert issues(parsed.warnings) == [(1, "unknown_columns")]
    assert "« Observations », « Taille »" in parsed.warnings[0].detail
    assert parsed.rows[0].first_name == "Jeanne"


def test_a_second_column_for_the_same_field_is_ignored() -> None:
    parsed = parse("Nom;Nom de famille;Prénom", "Martin;Durand;Jeanne")
    assert issues(parsed.warnings) == [(1, "duplicate_column")]
    assert parsed.rows[0].last_name == "Martin"


def test_several_phone_columns_are_all_read() -> None:
    parsed = parse(
        "Nom;Tél. fixe;Tél. portable;Téléphone 2",
        "Martin;01 45 67 89 10;06 12 34 56 78;07 81 23 45 67",
    )
    (row,) = parsed.rows
    assert row.mobile == Phone("+33612345678", PhoneKind.MOBILE, "FR")
    assert row.landline == Phone("+33145678910", PhoneKind.LANDLINE, "FR")
    assert row.other_phones == (Phone("+33781234567", PhoneKind.MOBILE, "FR"),)
    assert parsed.warnings == []


def test_missing_name_column_stops_the_import() -> None:
    with pytest.raises(RegisterFileError) as caught:
        parse("Dossier;Patronyme;Prénom", "D1;Martin;Jeanne")
    assert caught.value.code == "missing_column"
    assert "« Nom »" in caught.value.message
    assert "« Patronyme »" in caught.value.message


def test_map_overrides_the_header() -> None:
    parsed = parse(
        "Patronyme;Prénom usuel;Observations;Tél",
        "Martin;Jeanne;rien;06 12 34 56 78",
        mapping_overrides={"Patronyme": "last_name", "prénom usuel": "first_name"},
    )
    assert parsed.columns == {
        "Patronyme": "last_name",
        "Prénom usuel": "first_name",
        "Tél": "phone",
    }
    assert (parsed.rows[0].last_name, parsed.rows[0].first_name) == ("Martin", "Jeanne")
    ignored = parse("Nom;Observations", "Martin;rien", mapping_overrides={"Observations": "ignore"})
    assert ignored.warnings == []
    # An override wins over the built-in meaning of a header.
    remapped = parse("Nom;Adresse", "Martin;a@b.fr", mapping_overrides={"Adresse": "email"})
    assert remapped.rows[0].email == "a@b.fr"


@pytest.mark.parametrize(
    "overrides", [{"Nom": "surname"}, {"Colonne absente": "last_name"}], ids=["field", "column"]
)
def test_map_errors(overrides: dict[str, str]) -> None:
    with pytest.raises(RegisterFileError) as caught:
        parse("Nom;Prénom", "Martin;Jeanne", mapping_overrides=overrides)
    assert caught.value.code == "invalid_mapping"


def test_a_title_above_the_header_is_skipped() -> None:
    parsed = parse("Registre des domiciliés 2024;;", "Nom;Prénom;Quartier", "Martin;Jeanne;Nord")
    assert parsed.header_line == 2
    assert [row.line for row in parsed.rows] == [3]


# --- Lines as a spreadsheet shows them -------------------------------------------------------


def test_line_numbers_with_quoted_line_breaks_and_blank_lines() -> None:
    parsed = parse(
        "Nom;Prénom;Adresse",  # 1
        'Martin;Jeanne;"3 rue des Lilas',  # 2: one spreadsheet line, two lines of text
        '80000 Amiens"',
        "",  # 3: blank, skipped
        ";;",  # 4: empty cells, skipped
        ";Paul;1 place Gambetta",  # 5
        "Durand;Louis;x",  # 6
    )
    assert [row.line for row in parsed.rows] == [2, 6]
    assert parsed.rows[0].extra["address"] == "3 rue des Lilas 80000 Amiens"
    assert issues(parsed.rejected) == [(5, "missing_name")]
    assert parsed.total_lines == 6


def test_quoted_delimiters_stay_inside_their_cell() -> None:
    parsed = parse(
        "Nom;Prénom;Téléphone;Quartier",
        '"Martin; dit Tintin";Jeanne;"06 12 34 56 78; 01 45 67 89 10";"Centre; gare"',
    )
    (row,) = parsed.rows
    assert (row.last_name, row.district) == ("Martin; dit Tintin", "Centre; gare")
    assert row.mobile is not None and row.landline is not None


def test_cell_count() -> None:
    parsed = parse(
        "Nom;Prénom;Quartier",
        "Martin;Jeanne;Nord;;",  # 2: trailing empty cells are harmless
        "Durand;Louis",  # 3: missing trailing cells are empty cells
        "Petit;Jean;Pierre;Nord",  # 4: an unquoted ";" shifted the columns
    )
    assert [row.line for row in parsed.rows] == [2, 3]
    assert issues(parsed.rejected) == [(4, "wrong_column_count")]
    assert "4 cellules pour 3 colonnes" in parsed.rejected[0].detail


def test_broken_quotes() -> None:
    parsed = parse(
        "Nom;Prénom;Quartier",
        'Martin;"Jeanne"x;Nord',  # 2: text after a closing quote
        "Durand;Louis;Sud",  # 3
        'Petit;"Jean;Nord',  # 4: a quote never closed swallows the end of the file
        "Leroy;Anne;Est",
    )
    assert [row.line for row in parsed.rows] == [3]
    assert issues(parsed.rejected) == [(2, "bad_quotes"), (4, "bad_quotes")]


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


# --- The sample registers: the project's reference report ------------------------------------


def _lines(text: str) -> list[int]:
    return [int(number) for number in text.split()]


# Every entry below was checked by hand against the line in the file (sed -n 'Np'). The
# invalid_phone entries follow libphonenumber's allocation tables (phonenumbers 9.0): 070-072
# mobiles, 0400-0409 landlines, truncated "06 12345" and 0691/0693/0639 numbers outside the
# allocated overseas blocks. "+33 (0)692..." is read as a Réunion mobile (phones.py).
DOMICILIES_REJECTED = {
    "duplicate_in_file": _lines(
        """
        35 205 238 268 283 298 326 480 522 614 628 635 642 643 652 755
        823 839 911 935 977
        """
    ),
    "invalid_birth_date": [236, 392, 541, 569, 629, 668, 745, 874],  # all "31/02/1950"
}
DOMICILIES_WARNINGS = {
    "invalid_phone": _lines(
        """
        13 15 17 19 28 30 38 48 52 59 81 93 112 113 118 125
        129 131 151 155 169 171 177 182 186 187 195 198 200 208 210 213
        232 234 240 249 253 258 273 277 287 289 292 295 299 311 320 321
        323 329 331 337 352 361 364 369 372 375 378 398 406 421 428 433
        434 442 444 459 474 486 488 489 491 499 520 521 525 530 534 537
        540 554 559 561 564 575 590 592 593 602 605 613 619 627 632 634
        638 661 667 688 693 701 705 708 709 718 719 721 731 732 743 749
        751 757 763 777 796 798 815 820 824 825 832 835 838 847 849 852
        861 863 864 870 880 883 890 891 895 901 921 928 934 936 950 954
        966 971 972 973 976 982 983 988 989
        """
    ),
    # An empty cell, "pas de tél", "voir fille", "NRP" or "?".
    "no_phone": _lines(
        """
        16 21 34 53 67 75 99 111 159 191 206 247 254 290 304 332
        348 359 402 415 423 449 450 469 477 484 508 539 542 581 633 691
        785 871 886 889 900 908 918 920 942 959 967 984
        """
    ),
    "landline_only": _lines(
        """
        85 88 140 211 216 219 251 286 309 361 368 453 519 666 680 716
        752 780 782 805 816 829 837 844 877 879 922 939 947 975 985 993
        1001
        """
    ),
    # "name at example.org"
    "invalid_email": _lines(
        """
        87 114 135 171 187 209 239 301 313 319 374 390 439 497 502 514
        540 639 788 883 959 962
        """
    ),
}
ANIMATIONS_REJECTED = {
    "duplicate_in_file": [22, 210, 265],
    "invalid_birth_date": [230],  # "31/02/1950"
}
ANIMATIONS_WARNINGS = {
    "no_phone": [3, 54, 60, 177, 193, 222, 280],
    "landline_only": _lines(
        """
        5 10 20 23 29 103 105 110 126 161 179 181 197 218 238 269
        284 288 294
        """
    ),
    "invalid_phone": _lines(
        """
        8 15 17 42 46 49 53 59 66 69 76 88 91 100 104 110
        124 127 132 136 142 151 167 173 183 184 186 187 196 198 205 212
        214 219 225 227 240 242 246 249 256 259 273 285 286 291 292 295
        298
        """
    ),
    "invalid_email": [39, 40, 49, 129, 181, 202, 227, 273, 276],
}
# A row's warnings come in this order: phone first, then e-mail.
_ORDER = ["invalid_phone", "landline_only", "no_phone", "foreign_number", "invalid_email"]


def _flatten(table: dict[str, list[int]]) -> list[tuple[int, str]]:
    pairs = [(line, reason) for reason, lines in table.items() for line in lines]
    return sorted(
        pairs, key=lambda pair: (pair[0], _ORDER.index(pair[1]) if pair[1] in _ORDER else 0)
    )


@pytest.mark.parametrize(
    ("name", "encoding", "accepted", "rejected", "warnings"),
    [
        ("registre_domicilies.csv", "utf-8-sig", 971, DOMICILIES_REJECTED, DOMICILIES_WARNINGS),
        ("registre_animations_cp1252.csv", "cp1252", 296, ANIMATIONS_REJECTED, ANIMATIONS_WARNINGS),
    ],
)
def test_sample_register_report(
    name: str,
    encoding: str,
    accepted: int,
    rejected: dict[str, list[int]],
    warnings: dict[str, list[int]],
) -> None:
    parsed = parse_register((DATA / name).read_bytes())
    assert (parsed.encoding, parsed.delimiter, parsed.header_line) == (encoding, ";", 1)
    assert list(parsed.columns.values()) == [
        "external_ref",
        "last_name",
        "first_name",
        "birth_date",
        "phone",
        "email",
        "district",
        "referent",
    ]
    assert len(parsed.rows) == accepted
    assert accepted + sum(map(len, rejected.values())) == parsed.total_lines - 1
    assert issues(parsed.rejected) == sorted(_flatten(rejected))
    assert issues(parsed.warnings) == _flatten(warnings)


def test_sample_register_details() -> None:
    parsed = parse_register((DATA / "registre_domicilies.csv").read_bytes())
    details = {(issue.line, issue.reason): issue.detail for issue in parsed.rejected}
    assert details[(35, "duplicate_in_file")] == "Même n° de dossier qu'à la ligne 20"
    assert details[(643, "duplicate_in_file")] == "Même n° de dossier qu'à la ligne 61"
    assert details[(236, "invalid_birth_date")] == "« 31/02/1950 » n'existe pas dans le calendrier"
    rows = {row.line: row for row in parsed.rows}
    # Line 3: "0650008063 / 01 45 67 89 10": the mobile for SMS, the landline for calls.
    assert rows[3].mobile == Phone("+33650008063", PhoneKind.MOBILE, "FR")
    assert rows[3].landline == Phone("+33145678910", PhoneKind.LANDLINE, "FR")
    # Line 9: "0692 840110", a Réunion mobile typed nationally.
    assert rows[9].mobile == Phone("+262692840110", PhoneKind.MOBILE, "RE")
    # Line 72: "+33 (0)692139389", a Réunion mobile written with the metropolitan code.
    assert rows[72].mobile == Phone("+262692139389", PhoneKind.MOBILE, "RE")
    assert (rows[21].last_name, rows[21].first_name) == ("LÉVY", "Aimée")


# --- Speed -----------------------------------------------------------------------------------


def _large_register(count: int) -> bytes:
    rng = random.Random(1)
    shapes = ["0{}", "+33{}", "0033 {}", "+33 (0){}"]
    lines = [HEADER]
    for n in range(count):
        national = rng.choice("6712345") + f"{rng.randrange(10**8):08d}"
        phone = rng.choice(shapes).format(national)
        if rng.random() < 0.1:
            phone += " / 01 45 67 89 10"
        born = f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/{rng.randint(1920, 2005)}"
        lines.append(f"X{n};NOM{n};Prénom;{born};{phone};p{n}@example.org;Nord;a@ccas.fr")
    return csv_bytes(*lines)


@pytest.mark.slow
def test_100k_rows_parse_well_under_ten_seconds() -> None:
    # Every number is different, so the phone caches do not help: the worst case. CPU time,
    # not wall time, so that other processes on a shared machine do not make it flaky.
    data = _large_register(100_000)
    started = time.process_time()
    parsed = parse_register(data)
    elapsed = time.process_time() - started
    assert len(parsed.rows) == 100_000
    assert elapsed < 10, f"{elapsed:.1f} s of CPU"

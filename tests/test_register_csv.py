"""Reading register CSV files: encodings, delimiters, headers, lines as a spreadsheet shows them."""

from __future__ import annotations

import random

import pytest

from campaigns.registry.register_encoding import decode_register
from campaigns.registry.register_file import parse_register
from campaigns.registry.register_issues import RegisterFileError
from campaigns.rules.phones import Phone, PhoneKind
from tests.register_support import HEADER, TODAY, csv_bytes, issues, parse

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

"""Reading a CCAS register exported as CSV into checked rows and a per-line report (no database)."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from itertools import islice
from typing import Any

from campaigns.rules.phones import Phone, PhoneCell, parse_phone_cell

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


@dataclass(slots=True)
class RegisterRow:
    """One accepted person, as the file describes them."""

    line: int
    external_ref: str | None
    civility: str | None
    last_name: str
    first_name: str
    birth_date: date | None
    mobile: Phone | None
    landline: Phone | None
    email: str | None
    district: str | None
    referent_email: str | None
    extra: dict[str, Any] = field(default_factory=dict)
    other_phones: tuple[Phone, ...] = ()


@dataclass(frozen=True, slots=True)
class RowIssue:
    """A rejected row or a warning, on the line a spreadsheet shows (header = line 1)."""

    line: int
    reason: str
    detail: str


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


# --- Encoding -------------------------------------------------------------------------------

_SPREADSHEET_MAGIC = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0")  # .xlsx/.ods (zip), .xls


def decode_register(data: bytes) -> tuple[str, str]:
    """The text of the file and the encoding used: UTF-8 (BOM or not), UTF-16 with BOM, cp1252."""
    if not data.strip():
        raise RegisterFileError("empty_file", FILE_ERRORS["empty_file"])
    if data.startswith(_SPREADSHEET_MAGIC):
        raise RegisterFileError(
            "not_csv",
            "Ce fichier est un classeur (Excel ou LibreOffice), pas un CSV : "
            "ouvrez-le et enregistrez-le au format « CSV UTF-8 » ou « CSV (point-virgule) ».",
        )
    if data.startswith(b"\xef\xbb\xbf"):
        candidates = ["utf-8-sig"]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        candidates = ["utf-16"]  # Excel's "Texte Unicode" always writes the BOM
    else:
        # Valid UTF-8 is almost never accidental for French text; otherwise Windows-1252,
        # which is what Excel writes for "CSV (séparateur : point-virgule)" on French Windows.
        candidates = ["utf-8", "cp1252"]
    for encoding in candidates:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if not text.strip():
            raise RegisterFileError("empty_file", FILE_ERRORS["empty_file"])
        if _looks_like_text(text):
            return text, encoding
    raise RegisterFileError(
        "unreadable_encoding",
        "Le fichier n'est pas un texte lisible (ni UTF-8, ni Windows-1252, ni UTF-16 avec BOM). "
        "Enregistrez-le depuis le tableur au format « CSV UTF-8 ».",
    )


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")


def _looks_like_text(text: str) -> bool:
    # NUL characters mean UTF-16 without BOM or a binary file; other control characters,
    # beyond a stray one, mean the guess was wrong.
    if "\x00" in text:
        return False
    return len(_CONTROL.findall(text)) <= max(2, len(text) // 1000)


# --- Columns ---------------------------------------------------------------------------------

_PERSON_FIELDS = (
    "external_ref",
    "civility",
    "last_name",
    "first_name",
    "birth_date",
    "phone",
    "email",
    "district",
    "referent",
)
# Optional data the fragile-people register may hold (DOMAIN.md), kept in RegisterRow.extra.
_EXTRA_FIELDS = (
    "address",
    "postal_code",
    "city",
    "category",
    "registered_by",
    "acknowledged_on",
    "next_review_on",
    "emergency_contact",
    "home_care_service",
)
_EXTRA_DATE_FIELDS = frozenset({"acknowledged_on", "next_review_on"})
FIELDS = (*_PERSON_FIELDS, *_EXTRA_FIELDS)
IGNORE = "ignore"

# Normalised header (lower case, no accents, punctuation as spaces) -> field.
_HEADER_ALIASES: dict[str, str] = {
    **dict.fromkeys(
        (
            "n dossier",
            "no dossier",
            "num dossier",
            "numero dossier",
            "numero de dossier",
            "n de dossier",
            "dossier",
            "ref dossier",
            "reference",
            "reference dossier",
            "ref",
            "identifiant",
        ),
        "external_ref",
    ),
    **dict.fromkeys(
        ("nom", "nom de famille", "nom d usage", "nom usage", "nom usuel", "noms"), "last_name"
    ),
    **dict.fromkeys(("prenom", "prenoms", "prenom s"), "first_name"),
    **dict.fromkeys(("civilite", "titre", "civ"), "civility"),
    **dict.fromkeys(
        (
            "date de naissance",
            "date naissance",
            "date de naiss",
            "naissance",
            "ne e le",
            "ne le",
            "nee le",
            "ddn",
        ),
        "birth_date",
    ),
    **dict.fromkeys(
        (
            "courriel",
            "e mail",
            "email",
            "mail",
            "mel",
            "adresse mail",
            "adresse e mail",
            "adresse email",
            "adresse electronique",
            "adresse courriel",
        ),
        "email",
    ),
    **dict.fromkeys(("quartier", "secteur", "quartier secteur"), "district"),
    **dict.fromkeys(
        (
            "referent",
            "referente",
            "referent e",
            "referent social",
            "travailleur social",
            "travailleuse sociale",
            "travailleur euse social e",
        ),
        "referent",
    ),
    **dict.fromkeys(("adresse", "adresse postale", "domicile"), "address"),
    **dict.fromkeys(("code postal", "cp"), "postal_code"),
    **dict.fromkeys(("ville", "commune"), "city"),
    **dict.fromkeys(("categorie", "categorie d inscription", "motif d inscription"), "category"),
    **dict.fromkeys(
        ("inscrit par", "inscrit e par", "inscription par", "demandeur"), "registered_by"
    ),
    **dict.fromkeys(
        (
            "date d accuse",
            "accuse de reception",
            "date d accuse de reception",
            "date accuse de reception",
            "date ar",
        ),
        "acknowledged_on",
    ),
    **dict.fromkeys(
        ("prochaine revision", "date de revision", "revision", "prochaine revue"), "next_review_on"
    ),
    **dict.fromkeys(
        ("contact d urgence", "contact urgence", "personne a prevenir", "personne a contacter"),
        "emergency_contact",
    ),
    **dict.fromkeys(
        ("service d aide a domicile", "aide a domicile", "service d aide", "saad"),
        "home_care_service",
    ),
}
# Phone columns may be several ("Tél. portable", "Tel fixe", "Téléphone 2"): all are read.
_PHONE_HEADER = re.compile(
    r"^(?:(?:n|no|num|numero) (?:de )?)?(?:tel|telephone|portable|mobile|fixe|gsm)"
    r"(?: (?:fixe|portable|mobile|domicile|perso|personnel))?(?: \d)?$"
)


_COMBINING = re.compile(r"[\u0300-\u036f]")
_NON_WORD = re.compile(r"[\W_]+")


def normalize_header(header: str) -> str:
    """Header text compared without case, accents or punctuation: "Né(e) le" -> "ne e le"."""
    text = _COMBINING.sub("", unicodedata.normalize("NFKD", header)).casefold()
    return _NON_WORD.sub(" ", text).strip()


def _field_for(header: str, overrides: dict[str, str]) -> str | None:
    key = header.strip()
    if key in overrides:
        return overrides[key]
    normalized = normalize_header(key)
    if normalized in overrides:
        return overrides[normalized]
    if _PHONE_HEADER.match(normalized):
        return "phone"
    return _HEADER_ALIASES.get(normalized)


@dataclass(slots=True)
class _Layout:
    """Which cell holds which field, decided once from the header."""

    fields: dict[str, int]  # single-valued field -> cell index
    phones: list[int]
    columns: dict[str, str]
    unknown: list[str]
    duplicates: list[str]
    width: int
    extras: list[str] = field(default_factory=list)  # the _EXTRA_FIELDS present


def _layout(header: list[str], overrides: dict[str, str]) -> _Layout:
    layout = _Layout({}, [], {}, [], [], len(header))
    for index, raw_name in enumerate(header):
        name = raw_name.strip()
        if not name:
            continue
        target = _field_for(name, overrides)
        if target is None:
            layout.unknown.append(name)
            continue
        if target == IGNORE:
            continue
        if target == "phone":
            layout.phones.append(index)
        elif target in layout.fields:
            layout.duplicates.append(name)
            continue
        else:
            layout.fields[target] = index
        layout.columns[name] = target
    layout.extras = [name for name in _EXTRA_FIELDS if name in layout.fields]
    return layout


def _normalized_overrides(mapping_overrides: dict[str, str] | None) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for column, target in (mapping_overrides or {}).items():
        if target not in FIELDS and target != IGNORE:
            raise RegisterFileError(
                "invalid_mapping",
                f"Champ inconnu « {target} » pour la colonne « {column} ». "
                f"Champs possibles : {', '.join((*FIELDS, IGNORE))}.",
            )
        overrides[column.strip()] = target
        overrides[normalize_header(column)] = target
    return overrides


# --- Dates, names, e-mails --------------------------------------------------------------------

_DMY = re.compile(r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{1,4})(?:\s+\d{1,2}:\d{2}(?::\d{2})?)?$")
_YMD = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?$")


class DateError(ValueError):
    """A date cell that cannot be read; the message says why, in French."""


def parse_french_date(text: str) -> date:
    """dd/mm/yyyy (also d/m/yyyy, dd-mm-yyyy, dd.mm.yyyy) or yyyy-mm-dd, optional time ignored.

    Two-digit years are refused: for people born 1925-2025 any pivot guesses wrong for
    someone, and a wrong century silently changes an age filter.
    """
    value = text.strip()
    if match := _YMD.match(value):
        year, month, day = (int(g) for g in match.groups())
    elif match := _DMY.match(value):
        day, month, year = (int(g) for g in match.groups())
        if len(match.group(3)) != 4:
            raise DateError(f"« {value} » : écrivez l'année sur quatre chiffres (ex. 1948)")
    else:
        raise DateError(f"« {value} » n'est pas une date au format jj/mm/aaaa")
    try:
        return date(year, month, day)
    except ValueError:
        raise DateError(f"« {value} » n'existe pas dans le calendrier") from None


def _birth_date(text: str, today: date) -> date:
    born = parse_french_date(text)
    if born > today:
        raise DateError(f"« {text.strip()} » est dans le futur")
    if born.year < 1900:
        raise DateError(f"« {text.strip()} » est antérieure à 1900")
    return born


def _clean(text: str) -> str:
    # Trims and collapses every kind of space, including the no-break ones Excel leaves.
    return " ".join(text.split())


def identity_key(last_name: str, first_name: str, birth_date: date | None) -> str:
    """Names and birth date compared without case, accents or punctuation ("Lévy" = "LEVY")."""
    born = birth_date.isoformat() if birth_date else ""
    return f"{normalize_header(last_name)}|{normalize_header(first_name)}|{born}"


_EMAIL = re.compile(r"^[^@\s,;<>()\"]+@[^@\s,;<>()\"]+\.[^@\s,;<>()\".]{2,}$")


@lru_cache(maxsize=4096)  # referents repeat on every row
def normalize_email(text: str) -> str | None:
    """The address in lower case, or None when it is not shaped like one."""
    value = text.strip().lower()
    if value.startswith("mailto:"):
        value = value[len("mailto:") :]
    if not _EMAIL.match(value) or ".." in value or value.startswith("."):
        return None
    return value


_CIVILITIES = {
    "m": "M.",
    "mr": "M.",
    "monsieur": "M.",
    "mme": "Mme",
    "madame": "Mme",
    "mlle": "Mme",  # the administration dropped "Mademoiselle" in 2012
    "mademoiselle": "Mme",
}


def normalize_civility(text: str) -> str | None:
    value = _clean(text)
    if not value:
        return None
    return _CIVILITIES.get(normalize_header(value), value)


# --- Rows ------------------------------------------------------------------------------------

# A quoted cell spanning more lines than this is an unclosed quote, not an address.
_MAX_RECORD_LINES = 20


@dataclass(slots=True)
class _Context:
    layout: _Layout
    default_region: str
    today: date
    rows: list[RegisterRow] = field(default_factory=list)
    rejected: list[RowIssue] = field(default_factory=list)
    warnings: list[RowIssue] = field(default_factory=list)
    seen_refs: dict[str, int] = field(default_factory=dict)
    seen_people: dict[str, tuple[int, str | None]] = field(default_factory=dict)


def _cell(cells: list[str], layout: _Layout, name: str) -> str:
    index = layout.fields.get(name)
    return _clean(cells[index]) if index is not None else ""


def _reject(ctx: _Context, line: int, reason: str, detail: str) -> None:
    ctx.rejected.append(RowIssue(line, reason, detail))


def _warn(ctx: _Context, line: int, reason: str, detail: str) -> None:
    ctx.warnings.append(RowIssue(line, reason, detail))


def _read_row(ctx: _Context, line: int, cells: list[str]) -> None:
    layout = ctx.layout
    if len(cells) > layout.width and any(c.strip() for c in cells[layout.width :]):
        _reject(
            ctx,
            line,
            "wrong_column_count",
            f"{len(cells)} cellules pour {layout.width} colonnes : un séparateur dans une "
            "cellule sans guillemets décale probablement les colonnes",
        )
        return
    # Fewer cells than columns: trailing empty cells that the writer left out.
    cells = cells + [""] * (layout.width - len(cells))
    last_name = _cell(cells, layout, "last_name")
    first_name = _cell(cells, layout, "first_name")
    if not last_name:
        _reject(ctx, line, "missing_name", "La cellule « Nom » est vide")
        return
    birth_text = _cell(cells, layout, "birth_date")
    birth_date: date | None = None
    if birth_text:
        try:
            birth_date = _birth_date(birth_text, ctx.today)
        except DateError as error:
            _reject(ctx, line, "invalid_birth_date", str(error))
            return
    external_ref = _cell(cells, layout, "external_ref") or None
    key = identity_key(last_name, first_name, birth_date) if birth_date else None
    if _is_duplicate(ctx, line, external_ref, key):
        return

    phones = _phones(ctx, line, cells)
    email = _email(ctx, line, cells)
    referent = _cell(cells, layout, "referent")
    referent_email = normalize_email(referent) if referent else None
    extra = _extra(ctx, line, cells)
    if referent and referent_email is None:
        extra["referent_name"] = referent
    ctx.rows.append(
        RegisterRow(
            line=line,
            external_ref=external_ref,
            civility=normalize_civility(_cell(cells, layout, "civility")),
            last_name=last_name,
            first_name=first_name,
            birth_date=birth_date,
            mobile=phones.mobile,
            landline=phones.landline or next(iter(phones.others), None),
            email=email,
            district=_cell(cells, layout, "district") or None,
            referent_email=referent_email,
            extra=extra,
            other_phones=phones.others if phones.landline else phones.others[1:],
        )
    )


def _is_duplicate(ctx: _Context, line: int, external_ref: str | None, key: str | None) -> bool:
    # Same file number: the same dossier twice. Same names and birth date: the same person,
    # unless both rows carry different file numbers (then only a warning: two dossiers).
    if external_ref is not None and external_ref in ctx.seen_refs:
        first = ctx.seen_refs[external_ref]
        _reject(ctx, line, "duplicate_in_file", f"Même n° de dossier qu'à la ligne {first}")
        return True
    # Without a birth date, two "Jean Martin" may well be two people: names alone never match.
    if key is not None and key in ctx.seen_people:
        first, first_ref = ctx.seen_people[key]
        if first_ref is None or external_ref is None:
            _reject(
                ctx,
                line,
                "duplicate_in_file",
                f"Mêmes nom, prénom et date de naissance qu'à la ligne {first}",
            )
            return True
        _warn(
            ctx,
            line,
            "possible_duplicate",
            f"Mêmes nom, prénom et date de naissance qu'à la ligne {first}, "
            "avec un autre n° de dossier",
        )
    if external_ref is not None:
        ctx.seen_refs[external_ref] = line
    if key is not None:
        ctx.seen_people.setdefault(key, (line, external_ref))
    return False


def _phones(ctx: _Context, line: int, cells: list[str]) -> PhoneCell:
    layout = ctx.layout
    if not layout.phones:
        return PhoneCell()
    texts = [cells[i].strip() for i in layout.phones if cells[i].strip()]
    phones = parse_phone_cell(" / ".join(texts), ctx.default_region) if texts else PhoneCell()
    if phones.invalid:
        shown = ", ".join(f"« {text} »" for text in phones.invalid)
        _warn(ctx, line, "invalid_phone", f"Numéro invalide ignoré : {shown}")
    if phones.mobile is None:
        if phones.landline is not None or phones.others:
            _warn(ctx, line, "landline_only", REASONS["landline_only"])
        elif not phones.invalid:
            detail = REASONS["no_phone"]
            if phones.note:
                detail += f" (mention « {phones.note} »)"
            _warn(ctx, line, "no_phone", detail)
    foreign = [p for p in phones.numbers if p.is_foreign]
    if foreign:
        shown = ", ".join(f"{p.e164} ({p.region})" for p in foreign)
        _warn(ctx, line, "foreign_number", f"Numéro étranger : {shown}")
    return phones


def _email(ctx: _Context, line: int, cells: list[str]) -> str | None:
    text = _cell(cells, ctx.layout, "email")
    if not text:
        return None
    email = normalize_email(text)
    if email is None:
        _warn(ctx, line, "invalid_email", f"« {text} » n'est pas une adresse e-mail")
    return email


def _extra(ctx: _Context, line: int, cells: list[str]) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    for name in ctx.layout.extras:
        value = _cell(cells, ctx.layout, name)
        if not value:
            continue
        if name in _EXTRA_DATE_FIELDS:
            try:
                extra[name] = parse_french_date(value)
            except DateError as error:
                _warn(ctx, line, "invalid_date", str(error))
            continue
        extra[name] = value
    return extra


# --- The file --------------------------------------------------------------------------------

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
            layout = _layout(record, overrides)
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


def _check_overrides(mapping_overrides: dict[str, str] | None, header: list[str]) -> None:
    written = {cell.strip() for cell in header}
    normalized = {normalize_header(cell) for cell in header}
    missing = [
        column
        for column in mapping_overrides or {}
        if column.strip() not in written and normalize_header(column) not in normalized
    ]
    if missing:
        raise RegisterFileError(
            "invalid_mapping",
            f"Colonne(s) absente(s) du fichier : {', '.join(f'« {c} »' for c in missing)}.",
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
    overrides = _normalized_overrides(mapping_overrides)
    delimiter, header_index, header = _find_header(text, overrides)
    _check_overrides(mapping_overrides, header)
    layout = _layout(header, overrides)
    ctx = _Context(layout, default_region, today or date.today())
    header_line = header_index + 1
    if layout.unknown:
        shown = ", ".join(f"« {name} »" for name in layout.unknown)
        _warn(ctx, header_line, "unknown_columns", f"Colonnes ignorées : {shown}")
    if layout.duplicates:
        shown = ", ".join(f"« {name} »" for name in layout.duplicates)
        _warn(ctx, header_line, "duplicate_column", f"Colonnes ignorées : {shown}")

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
                _reject(ctx, line, "bad_quotes", "Guillemet mal placé ou jamais fermé")
            continue
        line += 1
        span, physical = reader.line_num - physical, reader.line_num
        if line <= header_line or not any(cell.strip() for cell in cells):
            continue
        if span > _MAX_RECORD_LINES:
            _reject(
                ctx,
                line,
                "bad_quotes",
                f"Une cellule entre guillemets s'étend sur {span} lignes du fichier : "
                "guillemet probablement jamais fermé",
            )
            continue
        _read_row(ctx, line, cells)
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


__all__ = [
    "FIELDS",
    "FILE_ERRORS",
    "REASONS",
    "DateError",
    "ParsedRegister",
    "RegisterFileError",
    "RegisterRow",
    "RowIssue",
    "decode_register",
    "identity_key",
    "normalize_email",
    "normalize_header",
    "parse_french_date",
    "parse_register",
]

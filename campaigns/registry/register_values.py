"""Cell values of a register: French dates, names, civilities, e-mails, identity keys."""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from functools import lru_cache

__all__ = [
    "DateError",
    "birth_date_of",
    "clean_cell",
    "identity_key",
    "normalize_civility",
    "normalize_email",
    "normalize_header",
    "parse_french_date",
]

_COMBINING = re.compile(r"[\u0300-\u036f]")
_NON_WORD = re.compile(r"[\W_]+")


def normalize_header(header: str) -> str:
    """Header text compared without case, accents or punctuation: "Né(e) le" -> "ne e le"."""
    text = _COMBINING.sub("", unicodedata.normalize("NFKD", header)).casefold()
    return _NON_WORD.sub(" ", text).strip()


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


def birth_date_of(text: str, today: date) -> date:
    born = parse_french_date(text)
    if born > today:
        raise DateError(f"« {text.strip()} » est dans le futur")
    if born.year < 1900:
        raise DateError(f"« {text.strip()} » est antérieure à 1900")
    return born


def clean_cell(text: str) -> str:
    # Trims and collapses every kind of space, including the no-break ones Excel leaves.
    return " ".join(text.split())


def identity_key(last_name: str, first_name: str, birth_date: date | None) -> str:
    """Names and birth date compared without case, accents or punctuation ("Lévy" = "LEVY")."""
    born = birth_date.isoformat() if birth_date else ""
    return f"{normalize_header(last_name)}|{normalize_header(first_name)}|{born}"


# Stricter than the RFC on purpose: a register's e-mail is typed by hand and exported to
# spreadsheets, so a local part starts with a letter or digit ("=1+1@evil.fr" is refused)
# and a domain is made of plain labels.
_EMAIL = re.compile(
    r"^[a-z0-9\u00e0-\u00ff](?:[a-z0-9\u00e0-\u00ff._%+'-]{0,63})"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}$"
)


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
    value = clean_cell(text)
    if not value:
        return None
    return _CIVILITIES.get(normalize_header(value), value)

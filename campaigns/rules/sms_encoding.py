"""What an SMS text costs: GSM 03.38 or UCS-2, its segments, and the normalisations that help.

The rules come from DOMAIN.md ("SMS encoding"). The GSM 03.38 tables are written out
below as data, in code-point order, so that they can be read against the standard.

Decisions worth knowing:
- Lowercase "ç" is treated as UCS-2. The default alphabet's position 0x09 is the
  capital "Ç" in 3GPP TS 23.038; some handsets and providers show it as "ç", others
  do not, so a text with "ç" is sent in UCS-2 to be displayed faithfully.
- The escape character U+001B is not a character one can send: a text holding it
  is counted as UCS-2 (the ``gsm0338`` codec, by contrast, encodes it as one byte).
- An empty text is 1 segment of 0 units: a message that leaves is billed at least
  one part, and ``"".join(parts) == text`` still holds.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal

GSM7 = "GSM-7"
UCS2 = "UCS-2"

# GSM 03.38 default alphabet, positions 0x00 to 0x7F. Position 0x1B is the escape to the
# extension table, written here as U+001B and removed from the table below.
_GSM7_BASIC_ROWS = (
    "@£$¥èéùìòÇ\nØø\rÅå",  # 0x00-0x0F
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ",  # 0x10-0x1F
    " !\"#¤%&'()*+,-./",  # 0x20-0x2F
    "0123456789:;<=>?",  # 0x30-0x3F
    "¡ABCDEFGHIJKLMNO",  # 0x40-0x4F
    "PQRSTUVWXYZÄÖÑÜ§",  # 0x50-0x5F
    "¿abcdefghijklmno",  # 0x60-0x6F
    "pqrstuvwxyzäöñüà",  # 0x70-0x7F
)
GSM7_BASIC: dict[str, int] = {
    ch: code for code, ch in enumerate("".join(_GSM7_BASIC_ROWS)) if ch != "\x1b"
}

# GSM 03.38 extension table: each character is sent as ESC (0x1B) then this code,
# so it costs two septets.
GSM7_EXTENSION: dict[str, int] = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}

# Septets per character for every character that GSM-7 can carry.
_SEPTETS: dict[str, int] = {**dict.fromkeys(GSM7_BASIC, 1), **dict.fromkeys(GSM7_EXTENSION, 2)}

# (units in a single-part message, units per part once split)
_LIMITS = {GSM7: (160, 153), UCS2: (70, 67)}

# The same sets as regular expressions: a launch analyses a million texts, and scanning a
# text in C is some twenty times faster than testing it character by character in Python.
_NON_GSM7 = re.compile("[^" + "".join(re.escape(ch) for ch in _SEPTETS) + "]")
_GSM7_ESCAPED = re.compile("[" + "".join(re.escape(ch) for ch in GSM7_EXTENSION) + "]")
_BEYOND_BMP = re.compile("[\U00010000-\U0010ffff]")

# --- lossless normalisation -------------------------------------------------------------

_NO_BREAK_SPACES = "\u00a0\u202f\u2007"
_SPACES_CLASS = f"[ {_NO_BREAK_SPACES}]*"
# A French quotation « x »: the inner spaces (usually no-break ones) go with the guillemets.
_GUILLEMET_PAIR = re.compile(f"«{_SPACES_CLASS}([^«»\\n]*?){_SPACES_CLASS}»")
_LOSSLESS_TABLE = str.maketrans(
    {
        "‘": "'",
        "’": "'",
        "‚": "'",
        "‛": "'",
        "‹": "'",
        "›": "'",
        "“": '"',
        "”": '"',
        "„": '"',
        "‟": '"',
        "«": '"',
        "»": '"',
        "‐": "-",  # U+2010 hyphen
        "‑": "-",  # U+2011 non-breaking hyphen
        "‒": "-",  # U+2012 figure dash
        "–": "-",  # U+2013 en dash
        "—": "-",  # U+2014 em dash
        "―": "-",  # U+2015 horizontal bar
        "−": "-",  # U+2212 minus sign
        "…": "...",
        **dict.fromkeys(_NO_BREAK_SPACES, " "),
    }
)


# Any character the lossless normalisation would touch (« included, which the pair needs).
_LOSSLESS_CHARS = re.compile("[" + "".join(re.escape(chr(code)) for code in _LOSSLESS_TABLE) + "]")


def normalise_lossless(text: str) -> str:
    """Replace typographic characters by their plain GSM-7 equivalents, meaning unchanged.

    Curly quotes and guillemets become straight quotes (« x » becomes "x"), dashes
    become "-", "…" becomes "...", no-break and narrow no-break spaces become spaces.
    Nothing else changes: accented letters are the business of ``fold_accents``.
    """
    text = _GUILLEMET_PAIR.sub(r'"\1"', text)
    return text.translate(_LOSSLESS_TABLE)


# --- accent folding (lossy, opt-in per template) ------------------------------------------

# Letters whose closest GSM-7 form is not obtained by dropping diacritics.
_FOLD_SPECIAL = {
    "œ": "oe",
    "Œ": "OE",
    "ç": "c",  # lowercase ç is treated as UCS-2 (see the module docstring)
    "ł": "l",
    "Ł": "L",
    "đ": "d",
    "Đ": "D",
    "ı": "i",
}


def _fold_char(ch: str) -> str:
    if ch in _SEPTETS:
        return ch
    if ch in _FOLD_SPECIAL:
        return _FOLD_SPECIAL[ch]
    stripped = "".join(c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c))
    if stripped and stripped != ch and all(c in _SEPTETS for c in stripped):
        return stripped
    return ch


def fold_accents(text: str) -> str:
    """Turn letters GSM-7 lacks into their closest GSM-7 letters (ê -> e, œ -> oe, È -> E).

    The GSM-7 accented letters (é è à ù ì ò É Ç, and Ä Ö Ñ Ü ä ö ñ ü Å å) are kept.
    Characters with no close GSM-7 letter (emoji, symbols) are left as they are.
    This changes the text: apply it only when a template asks for it.
    """
    # Only characters outside GSM-7 can change: _fold_char keeps the others as they are.
    return _NON_GSM7.sub(lambda m: _fold_char(m.group()), text)


# --- analysis --------------------------------------------------------------------------


@dataclass(frozen=True)
class SmsAnalysis:
    """A text as it will be sent, with its encoding and how it is cut into segments."""

    text: str
    encoding: str  # "GSM-7" or "UCS-2"
    segments: int
    parts: tuple[str, ...]
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    ucs2_chars: tuple[str, ...]  # distinct characters forcing UCS-2, first appearance first
    normalised: bool  # the lossless normalisation changed the text
    folded: bool  # accent folding changed the text

    @property
    def remaining(self) -> int:
        """Units still free in the last segment before one more segment is needed."""
        single, per_part = _LIMITS[self.encoding]
        if self.segments <= 1:
            return single - self.units
        return per_part - sum(_unit_costs(self.parts[-1], self.encoding))


def is_gsm7(text: str) -> bool:
    """Whether every character of the text fits the GSM 03.38 default alphabet or extension."""
    return _NON_GSM7.search(text) is None


def _unit_costs(text: str, encoding: str) -> list[int]:
    if encoding == GSM7:
        return [_SEPTETS[ch] for ch in text]
    # A code point beyond the BMP (most emoji) is a surrogate pair: two UTF-16 units.
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def _split(text: str, costs: list[int], single: int, per_part: int) -> tuple[str, ...]:
    """Cut greedily by whole characters, so an escape or surrogate pair stays in one part."""
    if sum(costs) <= single:
        return (text,)
    parts: list[str] = []
    start = used = 0
    for index, cost in enumerate(costs):
        if used + cost > per_part:
            parts.append(text[start:index])
            start, used = index, 0
        used += cost
    parts.append(text[start:])
    return tuple(parts)


def _parts(text: str, encoding: str) -> tuple[tuple[str, ...], int]:
    """(parts, units): fixed-width slices when every character costs one unit, else greedy.

    With unit costs only, the greedy cut of `_split` is exactly a slice every `per_part`
    characters; a two-unit character (escape, surrogate pair) needs the walk.
    """
    single, per_part = _LIMITS[encoding]
    doubles = _GSM7_ESCAPED if encoding == GSM7 else _BEYOND_BMP
    double_count = len(doubles.findall(text))
    units = len(text) + double_count
    if units <= single:
        return (text,), units
    if not double_count:
        return tuple(text[i : i + per_part] for i in range(0, len(text), per_part)), units
    return _split(text, _unit_costs(text, encoding), single, per_part), units


def _transform(text: str, normalise: bool, fold: bool) -> tuple[str, bool, bool]:
    """(text, normalised, folded): the text once transformed as asked."""
    normalised = folded = False
    if normalise and _LOSSLESS_CHARS.search(text):
        changed = normalise_lossless(text)
        normalised, text = changed != text, changed
    if fold and _NON_GSM7.search(text):
        changed = fold_accents(text)
        folded, text = changed != text, changed
    return text, normalised, folded


def sent_form(text: str, *, normalise: bool = True, fold: bool = False) -> tuple[str, str, int]:
    """(text as sent, encoding, segments): what `analyse` says of them, for less work.

    For a launch, which needs nothing else of a million texts.
    """
    text = _transform(text, normalise, fold)[0]
    encoding = UCS2 if _NON_GSM7.search(text) else GSM7
    single, per_part = _LIMITS[encoding]
    doubles = len((_GSM7_ESCAPED if encoding == GSM7 else _BEYOND_BMP).findall(text))
    if len(text) + doubles <= single:
        return text, encoding, 1
    if not doubles:
        return text, encoding, -(-len(text) // per_part)
    return text, encoding, len(_split(text, _unit_costs(text, encoding), single, per_part))


def analyse(text: str, *, normalise: bool = True, fold: bool = False) -> SmsAnalysis:
    """Transform the text as asked, then find its encoding, units and segments."""
    text, normalised, folded = _transform(text, normalise, fold)
    ucs2_chars = tuple(dict.fromkeys(_NON_GSM7.findall(text)))
    encoding = UCS2 if ucs2_chars else GSM7
    parts, units = _parts(text, encoding)
    return SmsAnalysis(
        text=text,
        encoding=encoding,
        segments=len(parts),
        parts=parts,
        units=units,
        ucs2_chars=ucs2_chars,
        normalised=normalised,
        folded=folded,
    )


def price_estimate(segments: int, recipients: int, price_per_part: Decimal) -> Decimal:
    """The cost of sending a message of that many segments to that many recipients."""
    if segments < 0 or recipients < 0 or price_per_part < 0:
        raise ValueError("segments, recipients and price must not be negative")
    return Decimal(segments) * Decimal(recipients) * price_per_part

"""Phone numbers as CCAS registers write them: French, overseas or foreign, one or two per cell."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

# National numbers are tried in the CCAS's own region first, then in these, in this order
# (DOMAIN.md): "0692 12 34 56" is invalid in FR and valid in RE.
FALLBACK_REGIONS = ("FR", "RE", "YT", "GP", "MQ", "GF")
OVERSEAS_REGIONS = ("RE", "YT", "GP", "MQ", "GF")
# Regions whose numbers are French (metropolitan France, overseas departments and
# collectivities): anything else is reported as a foreign number.
FRENCH_REGIONS = frozenset({"FR", "RE", "YT", "GP", "MQ", "GF", "PM", "BL", "MF", "NC", "PF", "WF"})

# Separators between two numbers in one cell: "/", ";", ",", "|", a line break, " - ",
# and the words "ou" / "et".
_CELL_SEPARATORS = re.compile(r"[/;,|\n\r]|\s[-–—]\s|\bou\b|\bet\b", re.IGNORECASE)
# A run that looks like one number: digits with spaces, dots, dashes and "(0)" inside.
_CANDIDATE = re.compile(r"\+?\d[\d\s.\-()\u00a0\u202f]*\d|\d")
# Fewer digits than this is text ("1er étage", "fille 2"), not an attempt at a number.
_MIN_DIGITS = 4


class PhoneKind(StrEnum):
    """What a number can be used for: SMS and calls, calls only, or neither reliably."""

    MOBILE = "mobile"
    LANDLINE = "landline"
    OTHER = "other"  # VoIP 09, special 08, personal numbers, pagers...


@dataclass(frozen=True, slots=True)
class Phone:
    """A valid number in E.164 with its kind and the region it belongs to."""

    e164: str
    kind: PhoneKind
    region: str

    @property
    def sms_capable(self) -> bool:
        # FIXED_LINE_OR_MOBILE is already mapped to MOBILE (DOMAIN.md: SMS to both).
        return self.kind is PhoneKind.MOBILE

    @property
    def is_foreign(self) -> bool:
        return self.region not in FRENCH_REGIONS


@dataclass(frozen=True, slots=True)
class PhoneCell:
    """What one register cell (or several phone cells of a row) holds."""

    mobile: Phone | None = None
    landline: Phone | None = None
    others: tuple[Phone, ...] = ()
    note: str | None = None  # text without any number: "pas de tél", "NRP", "?"
    invalid: tuple[str, ...] = ()  # number-like texts that are not valid numbers

    @property
    def numbers(self) -> tuple[Phone, ...]:
        kept = (self.mobile, self.landline)
        return tuple(p for p in kept if p is not None) + self.others

    @property
    def is_empty(self) -> bool:
        return not self.numbers and not self.invalid


def _kind(number: phonenumbers.PhoneNumber) -> PhoneKind:
    number_type = phonenumbers.number_type(number)
    if number_type in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE):
        return PhoneKind.MOBILE
    if number_type == PhoneNumberType.FIXED_LINE:
        return PhoneKind.LANDLINE
    return PhoneKind.OTHER


def _to_phone(number: phonenumbers.PhoneNumber) -> Phone:
    return Phone(
        e164=phonenumbers.format_number(number, PhoneNumberFormat.E164),
        kind=_kind(number),
        region=phonenumbers.region_code_for_number(number) or "ZZ",
    )


def _valid(raw: str, region: str) -> phonenumbers.PhoneNumber | None:
    try:
        number = phonenumbers.parse(raw, region)
    except NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


# A French number in its usual shapes: "06 12 34 56 78", "06.12...", "+33 (0)6...", "0033 6...".
# These skip phonenumbers.parse: same metadata, far less work (100,000 rows must stay fast).
_FRENCH_SHAPE = re.compile(r"^(\+33|0033|0)[\s.\-]*(?:\(0\)[\s.\-]*)?([1-9](?:[\s.\-]?\d){8})$")
_COUNTRY_CODES = {
    region: phonenumbers.country_code_for_region(region) for region in FALLBACK_REGIONS
}


def _national_pattern(kind: str) -> re.Pattern[str]:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region("FR")
    desc = getattr(metadata, kind, None)
    pattern = getattr(desc, "national_number_pattern", None)
    if not isinstance(pattern, str):  # phonenumbers ships FR metadata; this guards an upgrade
        raise RuntimeError(f"phonenumbers has no French {kind} pattern")
    return re.compile(pattern)


_FR_MOBILE = _national_pattern("mobile")
_FR_FIXED = _national_pattern("fixed_line")


_TYPE_DESCS = (
    "fixed_line",
    "mobile",
    "toll_free",
    "premium_rate",
    "shared_cost",
    "personal_number",
    "voip",
    "pager",
    "uan",
    "voicemail",
)


def _any_type_pattern(region: str) -> re.Pattern[str]:
    # A valid number matches one number-type pattern of a region sharing its country code
    # (+262 is RE and YT): a cheap filter, so phonenumbers' full check runs only on hopefuls.
    patterns = []
    for code in phonenumbers.region_codes_for_country_code(_COUNTRY_CODES[region]):
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(code)
        for name in _TYPE_DESCS:
            desc = getattr(metadata, name)
            if desc is not None and desc.national_number_pattern:
                patterns.append(desc.national_number_pattern)
    return re.compile("|".join(f"(?:{p})" for p in patterns))


_ANY_TYPE = {region: _any_type_pattern(region) for region in FALLBACK_REGIONS}


@lru_cache(maxsize=100_000)
def parse_phone(raw: str, default_region: str = "FR") -> Phone | None:
    """One number as typed, or None when it is not a valid number anywhere we look."""
    text = raw.strip()
    shape = _FRENCH_SHAPE.match(text)
    if shape is not None:
        prefix, national = shape.group(1), re.sub(r"\D", "", shape.group(2))
        if prefix == "0":
            regions = dict.fromkeys((default_region, *FALLBACK_REGIONS))
        else:
            # "+33 (0)692 12 34 56" is a common mistake for +262 692 12 34 56: +33 692...
            # does not exist, so the overseas reading is the only one that reaches anybody.
            regions = dict.fromkeys(("FR", *OVERSEAS_REGIONS))
        for region in regions:
            phone = _national_in(national, region)
            if phone is not None:
                return phone
        return None
    if sum(c.isdigit() for c in text) < _MIN_DIGITS:
        return None
    for region in dict.fromkeys((default_region, *FALLBACK_REGIONS)):
        number = _valid(text, region)
        if number is not None:
            return _to_phone(number)
        if text.startswith(("+", "00")):
            break  # an international number means the same in every region
    return None


def _national_in(national: str, region: str) -> Phone | None:
    if region == "FR":
        if _FR_MOBILE.fullmatch(national):
            return Phone("+33" + national, PhoneKind.MOBILE, "FR")
        if _FR_FIXED.fullmatch(national):
            return Phone("+33" + national, PhoneKind.LANDLINE, "FR")
    any_type = _ANY_TYPE.get(region)
    if any_type is not None and not any_type.fullmatch(national):
        return None
    country_code = _COUNTRY_CODES.get(region) or phonenumbers.country_code_for_region(region)
    if not country_code:
        return None
    number = phonenumbers.PhoneNumber(country_code=country_code, national_number=int(national))
    return _to_phone(number) if phonenumbers.is_valid_number(number) else None


def _candidates(text: str) -> list[str]:
    if _FRENCH_SHAPE.match(text):
        return [text]  # the usual cell: one French number
    found: list[str] = []
    for piece in _CELL_SEPARATORS.split(text):
        for match in _CANDIDATE.finditer(piece):
            candidate = match.group().strip()
            digits = re.sub(r"\D", "", candidate)
            if len(digits) < _MIN_DIGITS:
                continue
            # Two national numbers glued by spaces: "06 12 34 56 78 01 45 67 89 10".
            if len(digits) == 20 and digits[0] == "0" and digits[10] == "0":
                found.extend((digits[:10], digits[10:]))
            else:
                found.append(candidate)
    return found


@lru_cache(maxsize=50_000)
def parse_phone_cell(raw: str, default_region: str = "FR") -> PhoneCell:
    """Every number in a cell: the first mobile is the SMS number, the first landline for calls."""
    text = " ".join(raw.split())
    if not text:
        return PhoneCell()
    candidates = _candidates(text)
    if not candidates:
        return PhoneCell(note=text)
    mobile: Phone | None = None
    landline: Phone | None = None
    others: list[Phone] = []
    invalid: list[str] = []
    seen: set[str] = set()
    for candidate in candidates:
        phone = parse_phone(candidate, default_region)
        if phone is None:
            invalid.append(candidate)
            continue
        if phone.e164 in seen:
            continue
        seen.add(phone.e164)
        if phone.kind is PhoneKind.MOBILE and mobile is None:
            mobile = phone
        elif phone.kind is PhoneKind.LANDLINE and landline is None:
            landline = phone
        else:
            others.append(phone)
    return PhoneCell(mobile, landline, tuple(others), None, tuple(invalid))


def format_national(e164: str) -> str:
    """A stored E.164 number as a caller reads it ("06 12 34 56 78"); unchanged if unparsable."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    region = phonenumbers.region_code_for_number(number)
    style = PhoneNumberFormat.NATIONAL if region == "FR" else PhoneNumberFormat.INTERNATIONAL
    return phonenumbers.format_number(number, style)

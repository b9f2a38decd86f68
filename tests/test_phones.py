"""Phone numbers as registers write them: French, overseas, foreign, two per cell, notes."""

from __future__ import annotations

import random

import phonenumbers
import pytest

from campaigns.rules.phones import (
    Phone,
    PhoneCell,
    PhoneKind,
    parse_phone,
    parse_phone_cell,
)

M, L, OTHER = PhoneKind.MOBILE, PhoneKind.LANDLINE, PhoneKind.OTHER

# raw, default region, expected E.164, kind, region
VALID = [
    # Metropolitan mobiles in every shape a CCAS file holds them.
    ("06 12 34 56 78", "FR", "+33612345678", M, "FR"),
    ("0612345678", "FR", "+33612345678", M, "FR"),
    ("06.12.34.56.78", "FR", "+33612345678", M, "FR"),
    ("06-12-34-56-78", "FR", "+33612345678", M, "FR"),
    ("  06 12 34 56 78  ", "FR", "+33612345678", M, "FR"),
    ("+33612345678", "FR", "+33612345678", M, "FR"),
    ("+33 6 12 34 56 78", "FR", "+33612345678", M, "FR"),
    ("0033612345678", "FR", "+33612345678", M, "FR"),
    ("0033 6 12 34 56 78", "FR", "+33612345678", M, "FR"),
    ("+33 (0)6 12 34 56 78", "FR", "+33612345678", M, "FR"),
    ("+33 (0)786907366", "FR", "+33786907366", M, "FR"),
    ("07 81 23 45 67", "FR", "+33781234567", M, "FR"),
    ("612345678", "FR", "+33612345678", M, "FR"),  # Excel dropped the leading zero
    # Landlines, VoIP and special numbers.
    ("01 45 67 89 10", "FR", "+33145678910", L, "FR"),
    ("03 22 97 10 10", "FR", "+33322971010", L, "FR"),
    ("09 70 12 34 56", "FR", "+33970123456", OTHER, "FR"),
    ("0800 123 456", "FR", "+33800123456", OTHER, "FR"),
    ("08 92 36 54 41", "FR", "+33892365441", OTHER, "FR"),
    # Overseas numbers typed nationally: invalid in FR, found in the next regions.
    ("0692 12 34 56", "FR", "+262692123456", M, "RE"),
    ("0692 840110", "FR", "+262692840110", M, "RE"),
    ("0639 40 12 34", "FR", "+262639401234", M, "YT"),
    ("0690 97 47 77", "FR", "+590690974777", M, "GP"),
    ("0696 72 10 88", "FR", "+596696721088", M, "MQ"),
    ("0694 42 10 52", "FR", "+594694421052", M, "GF"),
    ("0262 21 12 34", "FR", "+262262211234", L, "RE"),
    ("+262 692 12 34 56", "FR", "+262692123456", M, "RE"),
    # +33 followed by an overseas mobile does not exist: the overseas number is meant.
    ("+33 (0)692 13 93 89", "FR", "+262692139389", M, "RE"),
    ("0033696721088", "FR", "+596696721088", M, "MQ"),
    # The CCAS's own region is tried first: 0269 is a landline in both FR and Mayotte.
    ("0269 61 23 45", "FR", "+33269612345", L, "FR"),
    ("0269 61 23 45", "YT", "+262269612345", L, "YT"),
    ("0692 12 34 56", "RE", "+262692123456", M, "RE"),
    # Foreign numbers stay foreign: +269 is the Comoros, not Mayotte.
    ("+269 321 23 45", "FR", "+2693212345", M, "KM"),
    ("00269 321 23 45", "FR", "+2693212345", M, "KM"),
    ("+32 470 12 34 56", "FR", "+32470123456", M, "BE"),
    ("+212 6 12 34 56 78", "FR", "+212612345678", M, "MA"),
    ("+44 20 7946 0958", "FR", "+442079460958", L, "GB"),
    # FIXED_LINE_OR_MOBILE (North America) counts as a mobile: SMS may be sent.
    ("+1 212 555 0100", "FR", "+12125550100", M, "US"),
]


@pytest.mark.parametrize(("raw", "region", "e164", "kind", "where"), VALID)
def test_valid_numbers(raw: str, region: str, e164: str, kind: PhoneKind, where: str) -> None:
    assert parse_phone(raw, region) == Phone(e164, kind, where)


INVALID = [
    "",
    "   ",
    "abc",
    "12",
    "06 46530",  # truncated
    "06 12 34 56 78 9",  # one digit too many
    "07 11 44 26 94",  # 071 is not an allocated mobile range
    "07 00 55 23 01",
    "04 04 90 44 58",  # 040 is not an allocated landline range
    "0691 37 02 85",  # no overseas region holds 0691
    "+33 7 21 05 65 40",
    "+33 (0)722463907",
    "0033713682940",
    "+269 12",
]


@pytest.mark.parametrize("raw", INVALID)
def test_invalid_numbers(raw: str) -> None:
    assert parse_phone(raw) is None


@pytest.mark.parametrize(
    ("kind", "sms"),
    [(PhoneKind.MOBILE, True), (PhoneKind.LANDLINE, False), (PhoneKind.OTHER, False)],
)
def test_only_mobiles_receive_sms(kind: PhoneKind, sms: bool) -> None:
    assert Phone("+33612345678", kind, "FR").sms_capable is sms


@pytest.mark.parametrize(
    ("region", "foreign"),
    [("FR", False), ("RE", False), ("YT", False), ("GF", False), ("KM", True)],
)
def test_overseas_france_is_not_foreign(region: str, foreign: bool) -> None:
    assert Phone("+33612345678", PhoneKind.MOBILE, region).is_foreign is foreign


MOBILE_FR = Phone("+33612345678", M, "FR")
MOBILE_FR_2 = Phone("+33781234567", M, "FR")
LANDLINE_PARIS = Phone("+33145678910", L, "FR")
LANDLINE_AMIENS = Phone("+33322112233", L, "FR")

CELLS = [
    ("", PhoneCell()),
    ("   ", PhoneCell()),
    ("06 12 34 56 78", PhoneCell(mobile=MOBILE_FR)),
    ("0612345678 / 01 45 67 89 10", PhoneCell(MOBILE_FR, LANDLINE_PARIS)),
    ("06 12 34 56 78; 03 22 11 22 33", PhoneCell(MOBILE_FR, LANDLINE_AMIENS)),
    ("06 12 34 56 78, 03 22 11 22 33", PhoneCell(MOBILE_FR, LANDLINE_AMIENS)),
    ("06 12 34 56 78 ou 01 45 67 89 10", PhoneCell(MOBILE_FR, LANDLINE_PARIS)),
    ("06 12 34 56 78\n01 45 67 89 10", PhoneCell(MOBILE_FR, LANDLINE_PARIS)),
    # The landline written first: the mobile is still the SMS number.
    ("01 45 67 89 10 - 06 12 34 56 78", PhoneCell(MOBILE_FR, LANDLINE_PARIS)),
    # Two numbers glued by spaces only.
    ("06 12 34 56 78 01 45 67 89 10", PhoneCell(MOBILE_FR, LANDLINE_PARIS)),
    # Two mobiles: the first one is for SMS, the second kept aside.
    ("06 12 34 56 78 et 07 81 23 45 67", PhoneCell(MOBILE_FR, others=(MOBILE_FR_2,))),
    # The same number twice is one number.
    ("0612345678 / 06 12 34 56 78", PhoneCell(mobile=MOBILE_FR)),
    ("06 12 34 56 78 (fille)", PhoneCell(mobile=MOBILE_FR)),
    ("+33 (0)6 12 34 56 78", PhoneCell(mobile=MOBILE_FR)),
    ("09 70 12 34 56", PhoneCell(others=(Phone("+33970123456", OTHER, "FR"),))),
    ("06 46530 / 01 45 67 89 10", PhoneCell(landline=LANDLINE_PARIS, invalid=("06 46530",))),
    ("06 46530", PhoneCell(invalid=("06 46530",))),
    ("garbage 12345", PhoneCell(invalid=("12345",))),
    # Notes say there is no number: classified as notes, not as invalid numbers.
    ("pas de tél", PhoneCell(note="pas de tél")),
    ("Pas de  tél.", PhoneCell(note="Pas de tél.")),
    ("néant", PhoneCell(note="néant")),
    ("?", PhoneCell(note="?")),
    ("inconnu", PhoneCell(note="inconnu")),
    ("-", PhoneCell(note="-")),
    ("sans", PhoneCell(note="sans")),
    ("NRP", PhoneCell(note="NRP")),
    ("voir fille", PhoneCell(note="voir fille")),
    ("appeler le 2e étage", PhoneCell(note="appeler le 2e étage")),
]


@pytest.mark.parametrize(("raw", "expected"), CELLS)
def test_cells(raw: str, expected: PhoneCell) -> None:
    assert parse_phone_cell(raw) == expected


def test_cell_uses_the_ccas_region() -> None:
    cell = parse_phone_cell("0269 61 23 45 / 0639 40 12 34", "YT")
    assert cell.landline == Phone("+262269612345", L, "YT")
    assert cell.mobile == Phone("+262639401234", M, "YT")


def test_numbers_lists_every_kept_number_once() -> None:
    cell = parse_phone_cell("01 45 67 89 10 / 06 12 34 56 78 / 07 81 23 45 67 / 06 46530")
    assert cell.numbers == (MOBILE_FR, LANDLINE_PARIS, MOBILE_FR_2)
    assert not cell.is_empty
    assert parse_phone_cell("pas de tél").is_empty


def _reference(raw: str, region: str) -> Phone | None:
    """The rule of DOMAIN.md written with phonenumbers.parse only, to check the fast path."""
    international = raw.replace(" ", "").startswith(("+", "00"))
    regions = [region] if international else [region, "FR", "RE", "YT", "GP", "MQ", "GF"]
    for candidate in dict.fromkeys(regions):
        number = phonenumbers.parse(raw, candidate)
        if phonenumbers.is_valid_number(number):
            return _as_phone(number)
    number = phonenumbers.parse(raw, region)
    if international and number.country_code == 33:
        national = "0" + phonenumbers.national_significant_number(number)
        for overseas in ("RE", "YT", "GP", "MQ", "GF"):
            number = phonenumbers.parse(national, overseas)
            if phonenumbers.is_valid_number(number):
                return _as_phone(number)
    return None


def _as_phone(number: phonenumbers.PhoneNumber) -> Phone:
    kind = {
        phonenumbers.PhoneNumberType.MOBILE: M,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE: M,
        phonenumbers.PhoneNumberType.FIXED_LINE: L,
    }.get(phonenumbers.number_type(number), OTHER)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return Phone(e164, kind, phonenumbers.region_code_for_number(number))


def test_fast_path_agrees_with_phonenumbers() -> None:
    # The usual French shapes bypass phonenumbers.parse for speed; on random numbers in
    # every shape and region the result must be exactly the one phonenumbers gives.
    rng = random.Random(20240601)
    prefixes = ["692", "693", "639", "690", "691", "694", "696", "697", "262", "269", "596"]
    prefixes += ["590", "594", "709", "800", "890", "970", "976", "639", "700", "720"]
    for _ in range(4000):
        national = str(rng.randint(1, 9)) + f"{rng.randrange(10**8):08d}"
        if rng.random() < 0.5:
            national = rng.choice(prefixes) + national[3:]
        if rng.random() < 0.5:
            national = " ".join(national[i : i + 2] for i in range(0, 9, 2))
        raw = rng.choice(["0{}", "+33{}", "0033 {}", "+33 (0){}", "{}"]).format(national)
        region = rng.choice(["FR", "FR", "RE", "YT", "GP", "MQ", "GF"])
        assert parse_phone(raw, region) == _reference(raw, region), (raw, region)

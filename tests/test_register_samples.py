"""Reading register CSV files: the sample registers' reference reports, and the speed."""

from __future__ import annotations

import random
import time

import pytest

from campaigns.registry.register_file import parse_register
from campaigns.rules.phones import Phone, PhoneKind
from tests.register_support import DATA, HEADER, csv_bytes, issues

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

"""Importing registers: exact reports for the sample files, re-imports, opt-outs, merges."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from campaigns.core.audit import Actor
from campaigns.core.errors import Invalid
from campaigns.models import AuditEvent, Membership, OptOut, Person
from campaigns.registry import audiences
from campaigns.registry.importer import ImportFileError, check_segment, import_register

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DOMICILIES = DATA / "registre_domicilies.csv"
ANIMATIONS = DATA / "registre_animations_cp1252.csv"
ACTOR = Actor(None, "test")

# The exact reports, checked line by line against the files (header = line 1).
DOMICILIES_REJECTED = [
    (35, "duplicate_in_file", "Même n° de dossier qu'à la ligne 20"),
    (205, "duplicate_in_file", "Même n° de dossier qu'à la ligne 103"),
    (236, "invalid_birth_date", "« 31/02/1950 » n'existe pas dans le calendrier"),
    (238, "duplicate_in_file", "Même n° de dossier qu'à la ligne 61"),
    (268, "duplicate_in_file", "Même n° de dossier qu'à la ligne 153"),
    (283, "duplicate_in_file", "Même n° de dossier qu'à la ligne 250"),
    (298, "duplicate_in_file", "Même n° de dossier qu'à la ligne 245"),
    (326, "duplicate_in_file", "Même n° de dossier qu'à la ligne 10"),
    (392, "invalid_birth_date", "« 31/02/1950 » n'existe pas dans le calendrier"),
    (480, "duplicate_in_file", "Même n° de dossier qu'à la ligne 329"),
    (522, "duplicate_in_file", "Même n° de dossier qu'à la ligne 27"),
    (541, "invalid_birth_date", "« 31/02/1950 » n'existe pas dans le calendrier"),
    (569, "invalid_birth_date", "« 31/02/1950 » n'existe pas dans le calendrier"),
    (614, "duplicate_in_file", "Même n° de dossier qu'à la ligne 16"),
    (628, "duplicate_in_file", "Même n° de dossier qu'à la ligne 412"),
    (629, "invalid_birth_date", "« 31/02/1950 » n'existe pas dans le calendrier"),
    (635, "duplicate_in_file", "Même n° de dossier qu'à la ligne 335"),
    (642, "duplicate_in_file", "Même n° de dossier qu'à la ligne 150"),
    (643, "duplicate_in_file", "Même n° de dossier qu'à la ligne 61"),
    (652, "duplicate_in_file", "Même n° de dossier qu'à la ligne 176"),
    (668, "invalid_birth_date", "« 31/02/1950 » n'existe pas dans le calendrier"),
    (745, "invalid_birth_date", "« 31/02/1950 » n'existe pas dans le calendrier"),
    (755, "duplicate_in_file", "Même n° de dossier qu'à la ligne 105"),
    (823, "duplicate_in_file", "Même n° de dossier qu'à la ligne 210"),
    (839, "duplicate_in_file", "Même n° de dossier qu'à la ligne 400"),
    (874, "invalid_birth_date", "« 31/02/1950 » n'existe pas dans le calendrier"),
    (911, "duplicate_in_file", "Même n° de dossier qu'à la ligne 23"),
    (935, "duplicate_in_file", "Même n° de dossier qu'à la ligne 804"),
    (977, "duplicate_in_file", "Même n° de dossier qu'à la ligne 666"),
]
DOMICILIES_WARNINGS = {
    "invalid_phone": [
        13,
        15,
        17,
        19,
        28,
        30,
        38,
        48,
        52,
        59,
        81,
        93,
        112,
        113,
        118,
        125,
        129,
        131,
        151,
        155,
        169,
        171,
        177,
        182,
        186,
        187,
        195,
        198,
        200,
        208,
        210,
        213,
        232,
        234,
        240,
        249,
        253,
        258,
        273,
        277,
        287,
        289,
        292,
        295,
        299,
        311,
        320,
        321,
        323,
        329,
        331,
        337,
        352,
        361,
        364,
        369,
        372,
        375,
        378,
        398,
        406,
        421,
        428,
        433,
        434,
        442,
        444,
        459,
        474,
        486,
        488,
        489,
        491,
        499,
        520,
        521,
        525,
        530,
        534,
        537,
        540,
        554,
        559,
        561,
        564,
        575,
        590,
        592,
        593,
        602,
        605,
        613,
        619,
        627,
        632,
        634,
        638,
        661,
        667,
        688,
        693,
        701,
        705,
        708,
        709,
        718,
        719,
        721,
        731,
        732,
        743,
        749,
        751,
        757,
        763,
        777,
        796,
        798,
        815,
        820,
        824,
        825,
        832,
        835,
        838,
        847,
        849,
        852,
        861,
        863,
        864,
        870,
        880,
        883,
        890,
        891,
        895,
        901,
        921,
        928,
        934,
        936,
        950,
        954,
        966,
        971,
        972,
        973,
        976,
        982,
        983,
        988,
        989,
    ],
    "no_phone": [
        16,
        21,
        34,
        53,
        67,
        75,
        99,
        111,
        159,
        191,
        206,
        247,
        254,
        290,
        304,
        332,
        348,
        359,
        402,
        415,
        423,
        449,
        450,
        469,
        477,
        484,
        508,
        539,
        542,
        581,
        633,
        691,
        785,
        871,
        886,
        889,
        900,
        908,
        918,
        920,
        942,
        959,
        967,
        984,
    ],
    "landline_only": [
        85,
        88,
        140,
        211,
        216,
        219,
        251,
        286,
        309,
        361,
        368,
        453,
        519,
        666,
        680,
        716,
        752,
        780,
        782,
        805,
        816,
        829,
        837,
        844,
        877,
        879,
        922,
        939,
        947,
        975,
        985,
        993,
        1001,
    ],
    "invalid_email": [
        87,
        114,
        135,
        171,
        187,
        209,
        239,
        301,
        313,
        319,
        374,
        390,
        439,
        497,
        502,
        514,
        540,
        639,
        788,
        883,
        959,
        962,
    ],
}
ANIMATIONS_REJECTED = [
    (22, "duplicate_in_file", "Même n° de dossier qu'à la ligne 8"),
    (210, "duplicate_in_file", "Même n° de dossier qu'à la ligne 195"),
    (230, "invalid_birth_date", "« 31/02/1950 » n'existe pas dans le calendrier"),
    (265, "duplicate_in_file", "Même n° de dossier qu'à la ligne 144"),
]
ANIMATIONS_WARNINGS = {
    "no_phone": [3, 54, 60, 177, 193, 222, 280],
    "landline_only": [
        5,
        10,
        20,
        23,
        29,
        103,
        105,
        110,
        126,
        161,
        179,
        181,
        197,
        218,
        238,
        269,
        284,
        288,
        294,
    ],
    "invalid_phone": [
        8,
        15,
        17,
        42,
        46,
        49,
        53,
        59,
        66,
        69,
        76,
        88,
        91,
        100,
        104,
        110,
        124,
        127,
        132,
        136,
        142,
        151,
        167,
        173,
        183,
        184,
        186,
        187,
        196,
        198,
        205,
        212,
        214,
        219,
        225,
        227,
        240,
        242,
        246,
        249,
        256,
        259,
        273,
        285,
        286,
        291,
        292,
        295,
        298,
    ],
    "invalid_email": [39, 40, 49, 129, 181, 202, 227, 273, 276],
}


def grouped(issues: list[dict]) -> dict[str, list[int]]:
    result: dict[str, list[int]] = {}
    for issue in issues:
        result.setdefault(issue["reason"], []).append(issue["line"])
    return result


def content(path: Path) -> bytes:
    return path.read_bytes()


async def run(path: Path, segment: str, **kwargs) -> dict:
    report = await import_register(
        content(path), segment=segment, actor=ACTOR, filename=path.name, **kwargs
    )
    return report.as_dict()


async def test_domicilies_register_imports_with_the_exact_report(db) -> None:
    report = await run(DOMICILIES, "domicilies")
    assert (report["created"], report["updated"], report["unchanged"]) == (971, 0, 0)
    assert report["rows"] == 1000
    assert report["encoding"] == "utf-8-sig"
    assert [(r["line"], r["reason"], r["detail"]) for r in report["rejected"]] == (
        DOMICILIES_REJECTED
    )
    assert grouped(report["warnings"]) == DOMICILIES_WARNINGS
    assert await Person.all().count() == 971
    assert await Membership.filter(segment="domicilies", source=DOMICILIES.name).count() == 971
    andre = await Person.get(external_ref="D01-0000001")
    # Two numbers in one cell: the mobile for SMS, the landline kept for calls.
    assert (andre.mobile, andre.landline) == ("+33650008063", "+33145678910")
    assert andre.referent_email == "a.nguyen@ccas.example"
    assert andre.email == "csamson@example.com"
    assert andre.birth_date == date(1946, 4, 27)


async def test_animations_register_in_windows_1252_imports_with_the_exact_report(db) -> None:
    report = await run(ANIMATIONS, "animations")
    assert (report["created"], report["updated"], report["unchanged"]) == (296, 0, 0)
    assert report["encoding"] == "cp1252"
    assert [(r["line"], r["reason"], r["detail"]) for r in report["rejected"]] == (
        ANIMATIONS_REJECTED
    )
    assert grouped(report["warnings"]) == ANIMATIONS_WARNINGS
    assert await Membership.filter(segment="animations").count() == 296


async def test_one_import_is_one_audit_event_with_counts_only(db) -> None:
    await run(DOMICILIES, "domicilies")
    events = await AuditEvent.filter(action="register.import")
    assert len(events) == 1
    detail = events[0].detail
    assert {k: detail[k] for k in ("created", "updated", "unchanged", "rejected", "warnings")} == {
        "created": 971,
        "updated": 0,
        "unchanged": 0,
        "rejected": 29,
        "warnings": 252,
    }
    # Codes and counts only: no name, number or address from the file.
    assert "COLAS" not in str(detail) and "+33" not in str(detail) and "@" not in str(detail)


async def test_importing_the_same_file_twice_changes_nothing(db) -> None:
    await run(DOMICILIES, "domicilies")
    again = await run(DOMICILIES, "domicilies")
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 971)
    assert len(again["rejected"]) == 29
    assert await Person.all().count() == 971
    assert await Membership.all().count() == 971


async def test_an_opt_out_survives_a_reimport(db) -> None:
    await run(DOMICILIES, "domicilies")
    colas = await Person.get(external_ref="D01-0000000")
    await OptOut.create(address=colas.mobile, channel="sms", source="reply")
    criteria = {"segments_any": ["domicilies"], "channel": "sms"}
    before = await audiences.count(criteria)
    await run(DOMICILIES, "domicilies")
    assert await OptOut.filter(address="+33641777631", active=True).exists()
    assert await audiences.count(criteria) == before
    assert not await audiences.audience_query(criteria, date.today()).filter(id=colas.id).exists()


async def test_a_landline_only_person_is_kept_and_not_sms_reachable(db) -> None:
    await run(DOMICILIES, "domicilies")
    bernier = await Person.get(external_ref="D01-0000083")  # "02 86 08 36 22"
    assert (bernier.mobile, bernier.landline) == (None, "+33286083622")
    sms = audiences.audience_query({"channel": "sms"}, date.today())
    assert not await sms.filter(id=bernier.id).exists()


async def test_animations_after_domicilies_updates_shared_people_and_adds_memberships(
    db, tmp_path: Path
) -> None:
    await run(DOMICILIES, "domicilies")
    report = await run(ANIMATIONS, "animations")
    # The two sample registers share nobody (checked: no common names + birth date).
    assert (report["created"], report["updated"], report["unchanged"]) == (296, 0, 0)
    # An attendee who is also domiciled: other file number, same names and birth date.
    shared = tmp_path / "animations_extra.csv"
    shared.write_text(
        "N° dossier;Nom;Prénom;Date de naissance;Tél. portable;Courriel;Quartier;Référent\n"
        "A-77;Colas;Grégoire;30/01/1996;06 12 34 56 78;;Saint-Acheul;c.martin@ccas.example\n"
        "A-78;Nouveau;Jean;01/02/1950;;;Nord;\n",
        encoding="utf-8",
    )
    report = await run(shared, "animations")
    assert (report["created"], report["updated"], report["unchanged"]) == (1, 1, 0)
    colas = await Person.get(external_ref="D01-0000000")  # the first file number stays
    assert colas.mobile == "+33612345678"
    assert colas.referent_email == "c.martin@ccas.example"
    segments = await Membership.filter(person_id=colas.id).values_list("segment", flat=True)
    assert sorted(segments) == ["animations", "domicilies"]
    again = await run(shared, "animations")
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 2)


async def test_an_empty_cell_does_not_erase_what_is_held(db, tmp_path: Path) -> None:
    first = tmp_path / "a.csv"
    first.write_text("Nom;Prénom;Date de naissance;Courriel\nMartin;Jeanne;02/03/1940;j@x.fr\n")
    second = tmp_path / "b.csv"
    second.write_text("Nom;Prénom;Date de naissance;Courriel\nMARTIN;Jeanne;02/03/1940;\n")
    await run(first, "aides_facultatives")
    report = await run(second, "aides_facultatives")
    # Same person (names compared without case), nothing new to write.
    assert (report["created"], report["updated"], report["unchanged"]) == (0, 0, 1)
    person = await Person.get()
    assert (person.email, person.last_name) == ("j@x.fr", "Martin")


async def test_dry_run_reports_the_same_and_writes_nothing(db) -> None:
    report = await run(DOMICILIES, "domicilies", dry_run=True)
    assert (report["created"], report["updated"], report["unchanged"]) == (971, 0, 0)
    assert report["dry_run"] is True
    assert len(report["rejected"]) == 29
    assert await Person.all().count() == 0
    assert await Membership.all().count() == 0
    assert await AuditEvent.all().count() == 0


async def test_fragile_register_keeps_what_the_law_allows(db, tmp_path: Path) -> None:
    path = tmp_path / "fragiles.csv"
    header = "Nom;Prénom;Date de naissance;Catégorie;Inscrit par;Date AR;Prochaine révision\n"
    path.write_text(header + "Durand;Paul;01/01/1940;65 ans et plus;tiers;03/01/2025;01/01/2026\n")
    report = await run(path, "registre_fragiles")
    assert report["created"] == 1
    membership = await Membership.get(segment="registre_fragiles")
    assert membership.category == "65 ans et plus"
    assert membership.registered_by == "third_party"
    assert membership.acknowledged_on == date(2025, 1, 3)
    assert membership.next_review_on == date(2026, 1, 1)
    path.write_text(header + "Durand;Paul;01/01/1940;handicap;tiers;03/01/2025;01/01/2026\n")
    report = await run(path, "registre_fragiles")
    assert (report["created"], report["updated"], report["unchanged"]) == (0, 1, 0)
    assert (await Membership.get(segment="registre_fragiles")).category == "handicap"


async def test_a_file_without_a_name_column_is_refused_in_french(db, tmp_path: Path) -> None:
    path = tmp_path / "sans_nom.csv"
    path.write_text("Identifiant;Téléphone\n1;0612345678\n")
    with pytest.raises(ImportFileError) as error:
        await run(path, "domicilies")
    assert error.value.code == "missing_column"
    assert "Colonne du nom introuvable" in error.value.detail
    assert await Person.all().count() == 0


async def test_progress_reaches_its_total(db) -> None:
    seen: list[tuple[int, int]] = []
    await run(ANIMATIONS, "animations", progress=lambda done, total: seen.append((done, total)))
    assert seen[0][0] == 0
    assert seen[-1][0] == seen[-1][1] > 0
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


@pytest.mark.parametrize(
    ("code", "valid"),
    [
        ("domicilies", True),
        ("aides_facultatives", True),
        ("animations", True),
        ("registre_fragiles", True),
        ("plan_canicule_2025", True),
        ("ab", True),
        ("a", False),
        ("Canicule", False),
        ("2025_canicule", False),
        ("plan-canicule", False),
        ("x" * 41, False),
        ("", False),
    ],
)
def test_segment_codes(code: str, valid: bool) -> None:
    if valid:
        assert check_segment(code) == code
    else:
        with pytest.raises(Invalid):
            check_segment(code)

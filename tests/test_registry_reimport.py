"""Importing registers again and again: re-imports, opt-outs, merges, dry runs, refusals."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from campaigns.core.errors import Invalid
from campaigns.models import AuditEvent, Membership, OptOut, Person
from campaigns.registry import audiences
from campaigns.registry.importer import ImportFileError, check_segment
from tests.import_support import ANIMATIONS, DOMICILIES, run


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

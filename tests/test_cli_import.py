"""The `campaigns import` and `campaigns demo` commands: French reports, JSON, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import phonenumbers
import pytest

from campaigns.cli.main import main
from campaigns.models import Membership, Person
from campaigns.registry.demo import fill_demo

DATA = Path(__file__).resolve().parent / "data"
DOMICILIES = DATA / "registre_domicilies.csv"
ANIMATIONS = DATA / "registre_animations_cp1252.csv"
CONSOLE_SCRIPT = Path(sys.executable).with_name("campaigns")


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cli.db"
    monkeypatch.setenv("CAMPAIGNS_DATABASE_URL", f"sqlite://{path}")
    return path


def test_human_report_in_french(database, capsys) -> None:
    assert main(["import", str(DOMICILIES), "--segment", "domicilies"]) == 0
    out = capsys.readouterr().out
    assert "dans le segment « domicilies »" in out
    assert "  personnes créées : 971\n" in out
    assert "  mises à jour : 0\n" in out
    assert "  lignes rejetées : 29\n" in out
    assert (
        "  ligne 35 : Personne déjà présente plus haut dans le fichier — "
        "Même n° de dossier qu'à la ligne 20\n"
    ) in out
    assert (
        "  ligne 236 : Date de naissance invalide — "
        "« 31/02/1950 » n'existe pas dans le calendrier\n"
    ) in out
    assert "  ligne 111 : Aucun numéro de téléphone — " in out
    assert out.index("Lignes rejetées") < out.index("Avertissements (lignes importées)")


def test_json_report_then_a_second_import_is_unchanged(database, capsys) -> None:
    assert main(["import", str(ANIMATIONS), "--segment", "animations", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert (first["created"], first["updated"], first["unchanged"]) == (296, 0, 0)
    assert first["rejected"][0] == {
        "line": 22,
        "reason": "duplicate_in_file",
        "detail": "Même n° de dossier qu'à la ligne 8",
    }
    assert len(first["warnings"]) == 84
    assert main(["import", str(ANIMATIONS), "--segment", "animations", "--json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert (second["created"], second["updated"], second["unchanged"]) == (0, 0, 296)


def test_dry_run_and_mapping(database, tmp_path: Path, capsys) -> None:
    path = tmp_path / "patronymes.csv"
    path.write_text("Dossier;Patronyme;Prénom\nX1;Dupont;Anne\n", encoding="utf-8")
    args = ["import", str(path), "--segment", "plan_canicule", "--map", "Patronyme=last_name"]
    assert main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Simulation (--dry-run) : rien n'a été écrit.")
    assert "  personnes créées : 1\n" in out
    assert main([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["created"] == 1
    assert main([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["unchanged"] == 1


@pytest.mark.parametrize(
    ("content", "args", "code", "message"),
    [
        (b"Id;Tel\n1;0612345678\n", ["--segment", "domicilies"], 1, "Colonne du nom introuvable"),
        (b"PK\x03\x04binary", ["--segment", "domicilies"], 1, "classeur"),
        (b"Nom\nDupont\n", ["--segment", "Fragiles!"], 2, "Segment invalide"),
        (b"Nom\nDupont\n", ["--segment", "domicilies", "--map", "Nom"], 2, "COLONNE=champ"),
        (b"Nom\nDupont\n", ["--segment", "domicilies", "--map", "Nom=age"], 1, "Champ inconnu"),
    ],
)
def test_file_and_usage_errors(database, tmp_path, capsys, content, args, code, message) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(content)
    assert main(["import", str(path), *args]) == code
    assert message in capsys.readouterr().err


def test_missing_file_and_missing_option(database, tmp_path, capsys) -> None:
    assert main(["import", str(tmp_path / "absent.csv"), "--segment", "domicilies"]) == 1
    assert "impossible de lire" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["import", str(DOMICILIES)])
    assert usage.value.code == 2


def test_console_script_prints_the_json_report(tmp_path: Path) -> None:
    env = {**os.environ, "CAMPAIGNS_DATABASE_URL": f"sqlite://{tmp_path / 'sub.db'}"}
    result = subprocess.run(
        [str(CONSOLE_SCRIPT), "import", str(ANIMATIONS), "--segment", "animations", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["created"], len(report["rejected"]), report["encoding"]) == (296, 4, "cp1252")


def test_demo_fills_an_empty_database_once(database, capsys) -> None:
    assert main(["demo", "--count", "300"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("300 personnes fictives créées")
    assert main(["demo"]) == 1
    assert "ne remplit qu'une base vide" in capsys.readouterr().err


async def test_demo_population_is_plausible(db) -> None:
    counts = await fill_demo(400, seed=1)
    assert set(counts) == {"domicilies", "aides_facultatives", "animations", "registre_fragiles"}
    assert await Person.all().count() == 400
    mobiles = await Person.exclude(mobile=None).values_list("mobile", flat=True)
    # ARCEP's fiction range: a demo campaign sent through a real route texts nobody.
    assert mobiles and all(m.startswith("+3363998") and len(m) == 12 for m in mobiles)
    landlines = await Person.exclude(landline=None).values_list("landline", flat=True)
    assert landlines and all(phonenumbers.is_valid_number(phonenumbers.parse(n)) for n in landlines)
    fragile = await Membership.filter(segment="registre_fragiles")
    assert fragile and all(m.category and m.registered_by and m.next_review_on for m in fragile)
    assert await Person.exclude(email=None).exists()
    assert await Person.exclude(referent_email=None).exists()


def test_progress_bar_only_when_asked() -> None:
    from campaigns.cli.import_register import progress_bar

    with progress_bar(False) as advance:
        assert advance is None
    with progress_bar(True) as advance:
        assert advance is not None
        advance(0, 10)
        advance(10, 10)

"""Shared by the register import tests: the sample registers and importing one as a test actor."""

from __future__ import annotations

from pathlib import Path

from campaigns.core.audit import Actor
from campaigns.registry.importer import import_register

DATA = Path(__file__).resolve().parent / "data"
DOMICILIES = DATA / "registre_domicilies.csv"
ANIMATIONS = DATA / "registre_animations_cp1252.csv"
ACTOR = Actor(None, "test")


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

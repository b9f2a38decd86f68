"""The columns of a register: which header names which field, decided once from the header.

Headers are compared without case, accents or punctuation against French aliases; a
`--map` override names a column's field when its title is unusual.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from campaigns.registry.register_issues import RegisterFileError
from campaigns.registry.register_values import normalize_header

__all__ = [
    "EXTRA_DATE_FIELDS",
    "EXTRA_FIELDS",
    "FIELDS",
    "IGNORE",
    "Layout",
    "check_overrides",
    "layout_of",
    "normalized_overrides",
]

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
EXTRA_FIELDS = (
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
EXTRA_DATE_FIELDS = frozenset({"acknowledged_on", "next_review_on"})
FIELDS = (*_PERSON_FIELDS, *EXTRA_FIELDS)
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
class Layout:
    """Which cell holds which field, decided once from the header."""

    fields: dict[str, int]  # single-valued field -> cell index
    phones: list[int]
    columns: dict[str, str]
    unknown: list[str]
    duplicates: list[str]
    width: int
    extras: list[str] = field(default_factory=list)  # the EXTRA_FIELDS present


def layout_of(header: list[str], overrides: dict[str, str]) -> Layout:
    layout = Layout({}, [], {}, [], [], len(header))
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
    layout.extras = [name for name in EXTRA_FIELDS if name in layout.fields]
    return layout


def normalized_overrides(mapping_overrides: dict[str, str] | None) -> dict[str, str]:
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


def check_overrides(mapping_overrides: dict[str, str] | None, header: list[str]) -> None:
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

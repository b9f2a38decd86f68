"""What a message template can see: the person, the CCAS and the campaign, and samples.

The variables are those of DESIGN.md: ``person.civility``, ``person.first_name``,
``person.last_name``, ``ccas.name``, ``ccas.hotline``, ``ccas.hours``, ``campaign.name``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class PersonVars:
    """What a template may say about the recipient."""

    civility: str = ""  # "Madame", "Monsieur" or empty
    first_name: str = ""
    last_name: str = ""


@dataclass(frozen=True)
class CcasVars:
    """What a template may say about the sending CCAS."""

    name: str
    hotline: str
    hours: str


@dataclass(frozen=True)
class CampaignVars:
    """What a template may say about the campaign."""

    name: str


@dataclass(frozen=True)
class TemplateVars:
    """Everything a template can see, one object per variable namespace."""

    person: PersonVars
    ccas: CcasVars
    campaign: CampaignVars

    def as_context(self) -> dict[str, object]:
        return {"person": self.person, "ccas": self.ccas, "campaign": self.campaign}


# Allowed names, namespace by namespace, read from the dataclasses so they cannot drift.
ALLOWED_VARIABLES: dict[str, tuple[str, ...]] = {
    "person": tuple(f.name for f in fields(PersonVars)),
    "ccas": tuple(f.name for f in fields(CcasVars)),
    "campaign": tuple(f.name for f in fields(CampaignVars)),
}


def sample_person() -> PersonVars:
    """A plausible recipient, used when a template is previewed without a person."""
    return PersonVars(civility="Madame", first_name="Jeanne", last_name="Martin")


def sample_ccas() -> CcasVars:
    """A plausible CCAS, with values of a typical length (for segment counts)."""
    return CcasVars(
        name="CCAS d'Amiens",
        hotline="0 800 12 34 56",
        hours="du lundi au vendredi de 9h à 17h",
    )


def sample_campaign() -> CampaignVars:
    return CampaignVars(name="Prendre des nouvelles")


def sample_vars(
    person: PersonVars | None = None,
    ccas: CcasVars | None = None,
    campaign: CampaignVars | None = None,
) -> TemplateVars:
    """The sample values, each replaceable by a real one."""
    return TemplateVars(
        person=person or sample_person(),
        ccas=ccas or sample_ccas(),
        campaign=campaign or sample_campaign(),
    )


Variables = TemplateVars | Mapping[str, object]


def context_of(variables: Variables) -> dict[str, object]:
    if isinstance(variables, TemplateVars):
        return variables.as_context()
    return dict(variables)

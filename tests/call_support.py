"""Set-up shared by the call campaign tests: a register, a script, callers, a clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from campaigns.calls.callers import set_callers
from campaigns.campaign.launch import launch
from campaigns.campaign.lifecycle import create_campaign
from campaigns.core.audit import Actor
from campaigns.core.runtime import Runtime
from campaigns.messages.template_store import TemplateContent, create_template
from campaigns.models import Campaign, Membership, Person, Role, Staff
from campaigns.registry.audiences import create_audience
from campaigns.staff import create_staff

# A Monday, 08:00 UTC (09:00 in Paris): the CCAS has just opened.
MONDAY = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
SCRIPT = (
    "Bonjour {{ person.civility }} {{ person.last_name }}, ici le {{ ccas.name }}. "
    "Comment allez-vous ? Avez-vous besoin de quelque chose ?"
)
ADMIN = Actor(None, "test")


@dataclass
class Clock:
    now: datetime = MONDAY

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Register:
    people: list[Person] = field(default_factory=list)
    staff: dict[str, Staff] = field(default_factory=dict)


async def fragile_register(size: int, *, referent: str | None = None) -> list[Person]:
    """People of the fragile register: mobiles, some landlines only, districts by parity."""
    people = []
    for i in range(size):
        person = await Person.create(
            last_name=f"Nom{i:03d}",
            first_name=f"Prénom{i}",
            civility="Madame" if i % 2 else "Monsieur",
            identity_key=f"nom{i}|prenom{i}|",
            mobile=f"+336{i:08d}" if i % 3 else None,
            landline=f"+331{i:08d}" if i % 3 != 1 else None,
            district="Nord" if i % 2 else "Sud",
            birth_date=datetime(1940, 1, 1).date(),
            address=f"{i} rue des Lilas",
            referent_email=referent if i == 0 else None,
        )
        await Membership.create(
            person=person, segment="registre_fragiles", emergency_contact=f"Fille {i}"
        )
        people.append(person)
    return people


async def staff(email: str, role: Role) -> Staff:
    member, _ = await create_staff(email, role, password="mot-de-passe-solide", name=email[:5])
    return member


async def call_campaign(
    runtime: Runtime,
    *,
    callers: list[str],
    recurrence_days: int | None = 3,
    launch_it: bool = True,
) -> tuple[Campaign, dict[str, Any] | None]:
    template = await create_template(
        "Appel registre", "appel", TemplateContent(SCRIPT), actor=ADMIN
    )
    audience, _ = await create_audience(
        "Registre", {"segments_any": ["registre_fragiles"]}, actor=ADMIN
    )
    campaign = await create_campaign(
        name="Appels du registre",
        channel="appel",
        template_id=template.id,
        audience_id=audience.id,
        actor=ADMIN,
        settings=runtime.settings,
        now=runtime.clock(),
        recurrence_days=recurrence_days,
    )
    await set_callers(campaign.id, callers, actor=ADMIN)
    result = await launch(campaign.id, actor=ADMIN, runtime=runtime) if launch_it else None
    return await Campaign.get(id=campaign.id), result

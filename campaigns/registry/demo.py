"""A synthetic French population for demonstrations: people across the four CCAS segments."""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass, field
from datetime import date, timedelta

from tortoise.transactions import in_transaction

from campaigns.core import audit
from campaigns.core.audit import Actor
from campaigns.core.errors import Conflict
from campaigns.models import Membership, Person
from campaigns.registry.register_values import identity_key


def _words(text: str) -> tuple[str, ...]:
    """Space-separated words; an underscore joins the two words of a compound name."""
    return tuple(word.replace("_", " ") for word in text.split())


LAST_NAMES = _words(
    "Martin Bernard Thomas Petit Robert Richard Durand Dubois Moreau Laurent Simon Michel "
    "Lefèvre Leroy Roux David Bertrand Morel Fournier Girard Bonnet Dupont Lambert Fontaine "
    "Rousseau Vincent Muller Lefebvre Faure André Mercier Blanc Guérin Boyer Garnier "
    "Chevalier François Legrand Gauthier Garcia Perrin Robin Clément Morin Nicolas Henry "
    "Roussel Mathieu Gautier Masson Marchand Duval Denis Dumont Marie Lemaire Noël Meyer "
    "Dufour Meunier Brun Blanchard Giraud Joly Rivière Lucas Brunet Gaillard Barbier Arnaud "
    "Martinez Gérard Roche Renard Schmitt Roy Leroux Colin Vidal Caron Picard Roger Fabre "
    "Aubert Lemoine Renaud Dumas Lacroix Olivier Philippe Bourgeois Pierre Benoît Rey "
    "Leclerc Payet Rolland Leclercq Guillaume Lecomte Lopez Jean Dupuis Guillot Hubert "
    "Berger Carpentier Sanchez Dupuy Moulin Louis Deschamps Huet Vasseur Perez Boucher "
    "Fleury Royer Klein Jacquet Adam Paris Poirier Marty Aubry Guyot Carré Charles Renault "
    "Charpentier Ménard Maillard Baron Bertin Bailly Hervé Schneider Fernandez Le_Gall "
    "Collet Léger Bouvier Julien Prévost Millet Perrot Daniel Le_Roux Cousin Germain Breton "
    "Besson Langlois Rémy Le_Goff Pelletier Lévêque Perrier Leblanc Barré Lebrun Marchal "
    "Weber Mallet Hamon Boulanger Jacob Monnier Michaud Rodriguez Guichard Gillet Étienne "
    "Grondin Poulain Tessier Chevallier Collin Chauvin Da_Silva Bouchet Gay Lemaître Bénard "
    "Maréchal Humbert Reynaud Antoine Hoarau Perret Barthélémy Cordier Pichon Lejeune "
    "Gilbert Lamy Delaunay Pasquier Carlier Laporte Dos_Santos Nguyen Diallo Traoré Benali "
    "Haddad"
)
WOMEN = _words(
    "Jeanne Marie Marguerite Germaine Louise Yvonne Madeleine Suzanne Simone Denise "
    "Paulette Odette Colette Jacqueline Monique Micheline Josette Andrée Raymonde Ginette "
    "Lucienne Huguette Christiane Nicole Françoise Danielle Annie Martine Brigitte Chantal "
    "Sylvie Nathalie Isabelle Sandrine Valérie Céline Aurélie Émilie Julie Camille Léa "
    "Manon Chloé Inès Sarah Fatima Aïcha Thérèse Geneviève Renée Hélène Élise Agnès "
    "Bernadette Mireille Éliane"
)
MEN = _words(
    "Jean Pierre André Louis Marcel René Roger Henri Robert Georges Raymond Maurice Paul "
    "Jacques Bernard Michel Claude Gérard Daniel Alain Gilbert Guy Christian Patrick "
    "Philippe Didier Thierry Éric Laurent Stéphane Olivier Christophe Sébastien Nicolas "
    "Julien Mathieu Thomas Kévin Maxime Lucas Hugo Mohamed Karim Youssef Mamadou Joseph "
    "François Lucien Étienne Émile Gaston Fernand Albert"
)
# The districts of Amiens, as CCAS files name them.
DISTRICTS = (
    "Centre-ville",
    "Saint-Leu",
    "Henriville",
    "Saint-Acheul",
    "Saint-Maurice",
    "Étouvie",
    "Pierre Rollin",
    "Nord",
    "Sud-Est",
    "Saint-Pierre",
    "Montières",
    "Renancourt",
    "Elbeuf",
    "Longueau",
)
REFERENTS = (
    "a.nguyen@ccas.example",
    "c.martin@ccas.example",
    "r.benali@ccas.example",
    "s.lefebvre@ccas.example",
    "m.dubois@ccas.example",
)
MAIL_DOMAINS = ("example.com", "example.org", "example.net")
# Age bands by segment (min, max years): the fragile register is 60+, domiciled people younger.
AGE_BANDS = {
    "domicilies": (18, 75),
    "aides_facultatives": (20, 90),
    "animations": (60, 95),
    "registre_fragiles": (60, 102),
}
# Share of the population in each segment (a person may be in several).
SEGMENT_WEIGHTS = (
    ("aides_facultatives", 0.50),
    ("registre_fragiles", 0.20),
    ("animations", 0.15),
    ("domicilies", 0.15),
)
FRAGILE_CATEGORIES = ("age_65", "age_60_inapte", "handicap")
REGISTERED_BY = ("self", "representative", "third_party")


def fold(text: str) -> str:
    """Lower case without accents or spaces, for synthetic e-mail addresses."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if c.isalnum() and not unicodedata.combining(c)).lower()


def mobile_number(rng: random.Random) -> str:
    """A mobile in ARCEP's range reserved for fiction (06 39 98 xx xx).

    No subscriber holds one, so a demo campaign sent by mistake through a real route
    texts nobody. phonenumbers calls them invalid: the demo writes them directly, the
    importer would refuse them.
    """
    return f"+3363998{rng.randrange(10_000):04d}"


def landline_number(rng: random.Random) -> str:
    """A landline in ARCEP's range reserved for fiction (03 53 01 xx xx)."""
    return f"+3335301{rng.randrange(10_000):04d}"


def birth_date_for(rng: random.Random, segment: str, today: date) -> date:
    low, high = AGE_BANDS[segment]
    age_days = rng.randrange(low * 365 + 1, high * 365 + 180)
    return today - timedelta(days=age_days)


@dataclass
class SyntheticPerson:
    """One demo person before it is written: the fields of Person and its segments."""

    civility: str
    first_name: str
    last_name: str
    birth_date: date
    mobile: str | None
    landline: str | None
    email: str | None
    district: str
    referent_email: str | None
    segments: list[str] = field(default_factory=list)


def synthetic_person(rng: random.Random, today: date) -> SyntheticPerson:
    woman = rng.random() < 0.55
    first = rng.choice(WOMEN if woman else MEN)
    last = rng.choice(LAST_NAMES)
    segments = [code for code, weight in SEGMENT_WEIGHTS if rng.random() < weight]
    if not segments:
        segments = [
            rng.choices([c for c, _ in SEGMENT_WEIGHTS], [w for _, w in SEGMENT_WEIGHTS])[0]
        ]
    born = birth_date_for(rng, segments[0], today)
    roll = rng.random()
    mobile = mobile_number(rng) if roll < 0.82 else None
    landline = landline_number(rng) if roll > 0.70 else None
    email = None
    if rng.random() < 0.30:
        email = f"{fold(first)}.{fold(last)}{rng.randrange(100)}@{rng.choice(MAIL_DOMAINS)}"
    return SyntheticPerson(
        civility="Mme" if woman else "M.",
        first_name=first,
        last_name=last,
        birth_date=born,
        mobile=mobile,
        landline=landline,
        email=email,
        district=rng.choice(DISTRICTS),
        referent_email=rng.choice(REFERENTS) if rng.random() < 0.4 else None,
        segments=segments,
    )


async def fill_demo(
    count: int = 3000, *, seed: int = 2024, today: date | None = None, actor: Actor | None = None
) -> dict[str, int]:
    """Write `count` synthetic people into an empty registry; returns counts per segment."""
    if await Person.exists():
        raise Conflict(
            "La base contient déjà des personnes : la démonstration ne remplit qu'une base vide.",
            code="not_empty",
        )
    rng = random.Random(seed)
    today = today or date.today()
    people = [synthetic_person(rng, today) for _ in range(count)]
    by_segment: dict[str, int] = {}
    async with in_transaction():
        await Person.bulk_create(
            [
                Person(
                    external_ref=f"DEMO-{index:06d}",
                    civility=p.civility,
                    first_name=p.first_name,
                    last_name=p.last_name,
                    identity_key=identity_key(p.last_name, p.first_name, p.birth_date),
                    birth_date=p.birth_date,
                    mobile=p.mobile,
                    landline=p.landline,
                    email=p.email,
                    preferred_channel="sms" if p.mobile else ("email" if p.email else "sms"),
                    district=p.district,
                    referent_email=p.referent_email,
                )
                for index, p in enumerate(people)
            ],
            batch_size=1000,
        )
        ids = dict(
            await Person.filter(external_ref__startswith="DEMO-").values_list("external_ref", "id")
        )
        memberships: list[Membership] = []
        for index, p in enumerate(people):
            person_id = ids[f"DEMO-{index:06d}"]
            for segment in p.segments:
                by_segment[segment] = by_segment.get(segment, 0) + 1
                memberships.append(_membership(rng, person_id, segment, today))
        await Membership.bulk_create(memberships, batch_size=1000)
    await audit.record(
        actor or Actor.cli(), "registry.demo", "person", None, people=count, **by_segment
    )
    return by_segment


def _membership(rng: random.Random, person_id: int, segment: str, today: date) -> Membership:
    started = today - timedelta(days=rng.randrange(30, 3650))
    membership = Membership(
        person_id=person_id, segment=segment, source="démonstration", started_on=started
    )
    if segment == "registre_fragiles":
        membership.category = rng.choice(FRAGILE_CATEGORIES)
        membership.registered_by = rng.choices(REGISTERED_BY, (0.6, 0.15, 0.25))[0]
        membership.acknowledged_on = started + timedelta(days=rng.randrange(1, 8))
        membership.next_review_on = today + timedelta(days=rng.randrange(1, 365))
    return membership

"""Audiences: saved JSON filters over people, turned into one composable query, counted cheaply."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pypika_tortoise.terms import Criterion
from tortoise.expressions import Q
from tortoise.functions import Lower
from tortoise.query_utils import QueryModifier
from tortoise.queryset import QuerySet

from campaigns.core import audit
from campaigns.core.audit import Actor
from campaigns.core.errors import Invalid, NotFound, problems_of
from campaigns.models import Audience, Person
from campaigns.registry.importer import check_segment
from campaigns.registry.people import summary

MAX_PAGE_SIZE = 200


class AudienceFilter(BaseModel):
    """The keys of an audience filter (DESIGN.md); an unknown key is an error, not ignored."""

    model_config = ConfigDict(extra="forbid")

    segments_any: list[str] = Field(default_factory=list, description="dans au moins un")
    segments_all: list[str] = Field(default_factory=list, description="dans tous")
    segments_none: list[str] = Field(default_factory=list, description="dans aucun")
    districts: list[str] = Field(default_factory=list, description="quartiers")
    age_min: int | None = Field(default=None, ge=0, le=130)
    age_max: int | None = Field(default=None, ge=0, le=130)
    channel: Literal["sms", "email"] | None = Field(
        default=None, description="a une adresse utilisable pour ce canal, sans opposition"
    )
    not_contacted_days: int | None = Field(default=None, ge=1, le=36500)
    silent_after: int | None = Field(
        default=None,
        ge=1,
        le=2_147_483_647,
        description="a reçu la campagne N et, depuis, n'a ni répondu, ni été joint, ni refusé",
    )

    @field_validator("segments_any", "segments_all", "segments_none")
    @classmethod
    def _segments(cls, codes: list[str]) -> list[str]:
        try:
            return sorted({check_segment(code) for code in codes})
        except Invalid as error:
            raise ValueError(error.detail) from None

    @field_validator("districts")
    @classmethod
    def _districts(cls, names: list[str]) -> list[str]:
        return sorted({" ".join(name.split()) for name in names if name.strip()})

    @model_validator(mode="after")
    def _ages(self) -> AudienceFilter:
        if self.age_min is not None and self.age_max is not None and self.age_min > self.age_max:
            raise ValueError("age_min dépasse age_max")
        return self


def parse_filter(data: Any) -> AudienceFilter:
    """A filter from JSON, with the problems listed in French."""
    if isinstance(data, AudienceFilter):
        return data
    try:
        return AudienceFilter.model_validate(data or {})
    except ValidationError as exc:
        problems = problems_of(exc, "filtre")
        raise Invalid(f"Filtre invalide : {problems}", code="invalid_filter") from None


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February in a year that has none
        return day.replace(year=day.year - years, day=28)


class _Sql(Criterion):
    """A fixed SQL condition: it carries no parameter, so nothing from a request reaches it."""

    def __init__(self, sql: str) -> None:
        super().__init__()
        self.sql = sql

    def get_sql(self, ctx: Any = None, **kwargs: Any) -> str:
        return self.sql


class _Condition(Q):
    """A Q node holding a correlated EXISTS, which tortoise's filters cannot express.

    PostgreSQL plans EXISTS as a semi-join and NOT EXISTS as an anti-join on the indexes of
    membership(segment, person_id) and opt_out(address); NOT IN would hash the whole
    opt-out table, and stop using a hash beyond work_mem.
    """

    __slots__ = ("sql",)

    def __init__(self, sql: str, *, negated: bool = False) -> None:
        super().__init__()
        self.sql = sql
        self._is_negated = negated

    def __bool__(self) -> bool:
        return True

    def __invert__(self) -> _Condition:
        return _Condition(self.sql, negated=not self._is_negated)

    def resolve(self, resolve_context: Any) -> QueryModifier:
        modifier = QueryModifier(where_criterion=_Sql(self.sql))
        return ~modifier if self._is_negated else modifier


def _literal_codes(codes: list[str]) -> str:
    # Segment codes are checked against SEGMENT_CODE (lowercase letters, digits, "_"), so
    # they can be written into the SQL; that keeps this condition free of parameters.
    for code in codes:
        check_segment(code)
    return ", ".join(f"'{code}'" for code in codes)


def _in_segments(codes: list[str]) -> Q:
    return _Condition(
        'EXISTS (SELECT 1 FROM "membership" "m" WHERE "m"."person_id" = "person"."id" '
        f'AND "m"."segment" IN ({_literal_codes(codes)}))'
    )


def _not_opted_out(column: str) -> Q:
    # Opt-outs are by address: whoever holds the address now, nothing is sent to it.
    blocked = _Condition(
        'EXISTS (SELECT 1 FROM "opt_out" "o" '
        f'WHERE "o"."address" = "person"."{column}" AND "o"."active")'
    )
    present: dict[str, Any] = {f"{column}__isnull": False}
    return Q(**present) & ~blocked


def audience_query(criteria: AudienceFilter | dict[str, Any], today: date) -> QuerySet[Person]:
    """People matching the filter: the one place where the filter becomes SQL.

    The result composes like any queryset (the campaign launch adds its own conditions and
    snapshots it); segment conditions are EXISTS on membership(segment, person_id) and the
    opt-out condition a NOT EXISTS on opt_out(address), both index-backed.
    """
    f = parse_filter(criteria)
    conditions: list[Q] = []
    if f.segments_any:
        conditions.append(_in_segments(f.segments_any))
    conditions += [_in_segments([code]) for code in f.segments_all]
    if f.segments_none:
        conditions.append(~_in_segments(f.segments_none))
    if f.districts:
        conditions.append(Q(district__in=f.districts))
    if f.age_min is not None:
        conditions.append(Q(birth_date__lte=_years_before(today, f.age_min)))
    if f.age_max is not None:
        conditions.append(Q(birth_date__gt=_years_before(today, f.age_max + 1)))
    if f.channel == "sms":
        conditions.append(_not_opted_out("mobile"))
    elif f.channel == "email":
        conditions.append(_not_opted_out("email"))
    if f.not_contacted_days is not None:
        since = datetime.combine(today, time(), tzinfo=UTC) - timedelta(days=f.not_contacted_days)
        conditions.append(Q(last_contacted_at__isnull=True) | Q(last_contacted_at__lt=since))
    if f.silent_after is not None:
        conditions.append(_silent_after(f.silent_after))
    return Person.filter(*conditions)


def _silent_after(campaign_id: int) -> Q:
    """Received campaign N (or its reminder) and has given no sign since its launch.

    A sign: a reply, an escalation, a call that reached them in one of the journey's
    campaigns, or an opt-out of the address it went to. The id is an int checked by the
    filter's model, so it can be written into the SQL.
    """
    n = int(campaign_id)
    journey = f'SELECT "c"."id" FROM "campaign" "c" WHERE "c"."id" = {n} OR "c"."parent_id" = {n}'
    since = f'(SELECT "c"."launched_at" FROM "campaign" "c" WHERE "c"."id" = {n})'
    # A message that failed (unknown number) is no invitation: those go to the call step
    # at once (campaigns.campaign.journeys), not to a reminder on the same number.
    return _Condition(
        '(EXISTS (SELECT 1 FROM "message" "jm" WHERE "jm"."person_id" = "person"."id" '
        f'AND "jm"."campaign_id" = {n} AND "jm"."status" NOT IN '
        "('skipped', 'cancelled', 'failed', 'rejected')) "
        'AND NOT EXISTS (SELECT 1 FROM "reply" "jr" WHERE "jr"."person_id" = "person"."id" '
        f'AND "jr"."received_at" >= {since}) '
        'AND NOT EXISTS (SELECT 1 FROM "escalation" "je" WHERE "je"."person_id" = "person"."id" '
        f'AND "je"."created_at" >= {since}) '
        'AND NOT EXISTS (SELECT 1 FROM "call_task" "jt" WHERE "jt"."person_id" = "person"."id" '
        "AND \"jt\".\"outcome\" IN ('joint_rien', 'joint_besoin', 'refus_appels') "
        f'AND "jt"."campaign_id" IN ({journey})) '
        'AND NOT EXISTS (SELECT 1 FROM "opt_out" "jo" WHERE "jo"."active" '
        'AND ("jo"."address" = "person"."mobile" OR "jo"."address" = "person"."email")))'
    )


async def count(criteria: AudienceFilter | dict[str, Any], today: date | None = None) -> int:
    return await audience_query(criteria, today or date.today()).count()


def _page(page: int, page_size: int) -> tuple[int, int]:
    if page < 1:
        raise Invalid("La page commence à 1", code="bad_page")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise Invalid(f"Taille de page entre 1 et {MAX_PAGE_SIZE}", code="bad_page")
    return page, page_size


async def members(
    criteria: AudienceFilter | dict[str, Any],
    page: int = 1,
    page_size: int = 50,
    today: date | None = None,
) -> dict[str, Any]:
    """One page of the people an audience holds, in alphabetical order, with the total."""
    page, page_size = _page(page, page_size)
    query = audience_query(criteria, today or date.today())
    total = await query.count()
    people = (
        # Without regard to case: "de Lattre" among the D, "durand" beside "DUPONT".
        await query.annotate(sort_last=Lower("last_name"), sort_first=Lower("first_name"))
        .order_by("sort_last", "sort_first", "id")
        .offset((page - 1) * page_size)
        .limit(page_size)
    )
    return {
        "items": [summary(person) for person in people],
        "total": total,
        "page": page,
        "page_size": page_size,
    }


def describe(audience: Audience, size: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": audience.id,
        "name": audience.name,
        "filter": audience.criteria,
        "created_by_id": audience.created_by_id,
        "created_at": audience.created_at.isoformat() if audience.created_at else None,
    }
    if size is not None:
        data["count"] = size
    return data


async def create_audience(
    name: str, criteria: AudienceFilter | dict[str, Any], *, actor: Actor
) -> tuple[Audience, int]:
    """Save a filter under a name; returns it with its current count."""
    name = " ".join((name or "").split())
    if not name:
        raise Invalid("Le nom de l'audience est obligatoire", code="missing_name")
    f = parse_filter(criteria)
    stored = f.model_dump(exclude_defaults=True)
    audience = await Audience.create(name=name[:200], criteria=stored, created_by_id=actor.id)
    size = await count(f)
    await audit.record(
        actor, "audience.create", "audience", audience.id, keys=sorted(stored), count=size
    )
    return audience, size


async def get_audience(audience_id: int) -> Audience:
    audience = await Audience.get_or_none(id=audience_id)
    if audience is None:
        raise NotFound("Audience introuvable")
    return audience


async def list_audiences() -> list[Audience]:
    return await Audience.all().order_by("-created_at", "-id")

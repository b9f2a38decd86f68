"""Shared by the campaign tests: a runtime whose queue only records, people and campaigns."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from campaigns.campaign import lifecycle as service
from campaigns.core.audit import Actor
from campaigns.core.runtime import Runtime, offline_runtime
from campaigns.core.settings import Settings
from campaigns.messages.template_store import TemplateContent, create_template
from campaigns.models import Audience, Campaign, Membership, Person

T0 = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)  # a Monday morning
ACTOR = Actor(1, "coord@ccas.test", "coordinator")
SIMPLE = "{{ ccas.name }} : Bonjour {{ person.first_name }}, appelez le {{ ccas.hotline }}."


class RecordingQueue:
    """Keeps what launch hands to dispatch; the dispatch jobs themselves are tested elsewhere."""

    def __init__(self) -> None:
        self.jobs: list[tuple[str, tuple[Any, ...], str | None]] = []

    async def enqueue(
        self, function: str, *args: Any, job_id: str | None = None, defer_by: float | None = None
    ) -> bool:
        self.jobs.append((function, args, job_id))
        return True

    async def close(self) -> None:
        return None


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def campaign_runtime(settings: Settings) -> Runtime:
    """A runtime on a Monday morning whose queue records what launch hands to dispatch."""
    settings.sms_price_per_part = Decimal("0.0650")
    return offline_runtime(settings, clock=Clock(T0), queue=RecordingQueue())


async def person(name: str, *, segment: str = "domicilies", **fields: Any) -> Person:
    p = await Person.create(
        last_name=name, first_name="Alex", identity_key=name.lower(), civility="Madame", **fields
    )
    if segment:
        await Membership.create(person=p, segment=segment)
    return p


async def make_campaign(
    *,
    body: str = SIMPLE,
    channel: str = "sms",
    fold: bool = False,
    subject: str | None = None,
    settings: Settings,
    now: datetime = T0,
    **options: Any,
) -> Campaign:
    template = await create_template(
        "Invitation", channel, TemplateContent(body, subject, fold_accents=fold), actor=ACTOR
    )
    audience = await Audience.create(name="Domiciliés", criteria={"segments_any": ["domicilies"]})
    return await service.create_campaign(
        name="Prendre des nouvelles",
        channel=channel,
        template_id=template.id,
        audience_id=audience.id,
        actor=ACTOR,
        settings=settings,
        now=now,
        **options,
    )

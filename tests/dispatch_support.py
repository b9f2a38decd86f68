"""Helpers for the dispatch, receipt, e-mail and worker tests: people, campaigns, a clock."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from campaigns.campaign import launch as campaign_launch
from campaigns.campaign import lifecycle as campaign_service
from campaigns.core.audit import Actor
from campaigns.core.runtime import Runtime
from campaigns.messages.template_store import TemplateContent, create_template
from campaigns.models import (
    Audience,
    Campaign,
    CampaignRun,
    CampaignStatus,
    Membership,
    Message,
    MessageStatus,
    Person,
    Template,
    TemplateVersion,
)
from providers.base import SendResult, SmsProvider, SmsRequest

ACTOR = Actor(None, "coordination@ccas.test", "coordinator")
SMS_BODY = "{{ ccas.name }} : Bonjour {{ person.first_name }}, appelez le {{ ccas.hotline }}."


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class ProbeSms:
    """A real SMS provider with a look around before each send: what the database held
    when the provider was called, a clock moved, a send that never returns."""

    name = "probe"

    def __init__(self, inner: SmsProvider, before: Callable[[SmsRequest], Awaitable[None]]) -> None:
        self.inner = inner
        self.before = before
        self.calls: list[str] = []

    async def send_sms(self, req: SmsRequest) -> SendResult:
        self.calls.append(req.message_id)
        await self.before(req)
        return await self.inner.send_sms(req)

    async def close(self) -> None:
        await self.inner.close()


def mobile(i: int) -> str:
    return f"+3361{i:07d}"


async def make_people(n: int, *, segment: str = "domicilies", email: bool = False) -> list[int]:
    """n people with a mobile (or an e-mail address), members of `segment`; their ids."""
    await Person.bulk_create(
        [
            Person(
                last_name=f"Nom{i:05d}",
                first_name=f"Prénom{i}",
                civility="Madame",
                identity_key=f"nom{i:05d}|prenom{i}",
                mobile=None if email else mobile(i),
                email=f"personne{i}@exemple.test" if email else None,
                preferred_channel="email" if email else "sms",
            )
            for i in range(n)
        ],
        batch_size=1000,
    )
    ids = sorted(await Person.all().values_list("id", flat=True))
    await Membership.bulk_create(
        [Membership(person_id=pid, segment=segment) for pid in ids], batch_size=1000
    )
    return ids


async def make_run(
    n: int,
    *,
    segments: int = 1,
    send_window: str | None = None,
    addresses: dict[int, str] | None = None,
    text: str = "Bonjour, le CCAS vous invite à appeler le 0800 000 000.",
) -> tuple[Campaign, CampaignRun]:
    """A running SMS campaign with one run of n queued messages, written directly."""
    person_ids = await make_people(n)
    template = await Template.create(name="Invitation", channel="sms")
    version = await TemplateVersion.create(template=template, version=1, body=text)
    campaign = await Campaign.create(
        name="Prendre des nouvelles",
        channel="sms",
        template_version=version,
        status=CampaignStatus.RUNNING,
        send_window=send_window,
        sender="CCAS",
    )
    run = await CampaignRun.create(campaign=campaign, number=1, recipients=n)
    addresses = addresses or {}
    await Message.bulk_create(
        [
            Message(
                run_id=run.id,
                campaign_id=campaign.id,
                person_id=pid,
                channel="sms",
                address=addresses.get(i, mobile(i)),
                text=text,
                encoding="GSM-7",
                segments=segments,
                status=MessageStatus.QUEUED,
            )
            for i, pid in enumerate(person_ids)
        ],
        batch_size=1000,
    )
    return campaign, run


async def launch_campaign(
    runtime: Runtime,
    n: int,
    *,
    channel: str = "sms",
    body: str = SMS_BODY,
    subject: str | None = None,
    body_html: str | None = None,
) -> dict[str, Any]:
    """A campaign built and launched the way a coordinator does it (template, audience, launch)."""
    campaign_id = await create_campaign(
        runtime, n, channel=channel, body=body, subject=subject, body_html=body_html
    )
    result = await campaign_launch.launch(campaign_id, actor=ACTOR, runtime=runtime)
    return {"campaign_id": campaign_id, **result}


async def create_campaign(
    runtime: Runtime,
    n: int,
    *,
    channel: str = "sms",
    body: str = SMS_BODY,
    subject: str | None = None,
    body_html: str | None = None,
) -> int:
    """A draft campaign to n new people of segment `domicilies`; its id."""
    await make_people(n, email=channel == "email")
    template = await create_template(
        "Invitation", channel, TemplateContent(body, subject, body_html=body_html), actor=ACTOR
    )
    audience = await Audience.create(name="Domiciliés", criteria={"segments_any": ["domicilies"]})
    campaign = await campaign_service.create_campaign(
        name="Prendre des nouvelles",
        channel=channel,
        template_id=template.id,
        audience_id=audience.id,
        actor=ACTOR,
        settings=runtime.settings,
        now=runtime.clock(),
        sender="CCAS",
    )
    return campaign.id


async def counts(campaign_id: int) -> dict[str, int]:
    statuses = await Message.filter(campaign_id=campaign_id).values_list("status", flat=True)
    result: dict[str, int] = {}
    for status in statuses:
        result[str(status)] = result.get(str(status), 0) + 1
    return result


T_MONDAY = datetime(2026, 3, 9, 10, 0, tzinfo=UTC)  # Monday 11:00 in Paris

"""Launch at scale keeps every decision: the same messages, counts and audit as before.

A few thousand generated people (several launch batches) with every case launch decides:
opt-outs (active, lifted, an e-mail one stored in capitals), duplicate addresses across
batches, landline only, no address, names that break a template (render errors), names
that change the encoding or the segment count. Each template below is launched on both
engines and the result is reduced to a digest; the digests were taken from the launch
as it was before it was streamed, cached and written by COPY, so any change in what a
person gets shows here.
"""

from __future__ import annotations

import hashlib
import json
import random
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from tortoise.transactions import in_transaction

from campaigns.campaign import launch as campaign_launch
from campaigns.campaign import lifecycle
from campaigns.core.runtime import Runtime, offline_runtime
from campaigns.core.settings import Settings
from campaigns.messages.renderer import CampaignRenderer
from campaigns.messages.template_store import TemplateContent, create_template
from campaigns.models import (
    Audience,
    AuditEvent,
    Campaign,
    CampaignRun,
    CampaignStatus,
    Membership,
    Message,
    OptOut,
    Person,
)
from campaigns.rules.sms_encoding import analyse
from tests.campaign_support import ACTOR, RecordingQueue

T0 = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)  # the launch's clock: messages' created_at
PEOPLE = 2_600  # three launch batches and a part
AUDIENCE = PEOPLE - len(range(0, PEOPLE, 17))  # every 17th person is in another segment

CIVILITIES = ("Madame", "Monsieur", None, "")
FIRST_NAMES = (
    "Jeanne", "Paul", "", "Zoé", "François", "Noël", "Ñuria", "Lou 🌸", "Anne-Marie",
    "Marie-Christine-Bernadette-Joséphine", "Kévin", "Ahmed", "Œdipe", "Ève", None,
)  # fmt: skip
LAST_NAMES = (
    "Li", "Martin", "Lefèvre", "O'Neil", "Nguyen", "Diallo", "Da  Silva", "Ba",
    "Müller", "Garçon", "Łukasiewicz", "Dupont-Montmorency-de-la-Tour-d'Auvergne", "Ünal",
    "Brahimi", "Çelik",
)  # fmt: skip

TEMPLATES: dict[str, dict[str, Any]] = {
    # Only the CCAS, the civility and the last name: the common invitation.
    "civility": {
        "body": "{{ ccas.name }} : Bonjour {{ person.civility }} {{ person.last_name }}, nous "
        "prenons de vos nouvelles. Appelez-nous au {{ ccas.hotline }}, {{ ccas.hours }}."
    },
    "first_name": {
        "body": "{{ ccas.name }} : Bonjour {{ person.first_name }}, appelez le "
        "{{ ccas.hotline }}. {{ campaign.name }}."
    },
    # Empty for people without a first name: those are render errors.
    "empty": {"body": "{{ person.first_name }}"},
    # An index past the end of a short last name: a render error the sample cannot show.
    "index": {"body": "Bonjour {{ person.last_name[4] }}{{ person.last_name[5:] }}."},
    "folded": {
        "body": "Une fête « {{ person.first_name|upper }} » — à {{ ccas.hours }}… "
        "{{ person.civility }} {{ person.last_name|title }}",
        "fold": True,
    },
    # Long enough that the name decides between one and two parts; escapes cost two.
    "long": {
        "body": "{{ person.civility }} {{ person.last_name }} : "
        + "x" * 100
        + " [€] {{ ccas.hotline }}"
    },
    "mention": {"body": "Bonjour {{ person.last_name }}", "mention": "STOP au 36179"},
    "hotline": {"body": "Appelez le {{ ccas.hotline }} {{ person.civility }}", "hotline": "01 02"},
    "email": {
        "channel": "email",
        "subject": "{{ ccas.name }} : {{ person.civility }} {{ person.last_name }}",
        "body": "Bonjour {{ person.first_name }},\n\nAppelez le {{ ccas.hotline }}.",
    },
    "email_html": {
        "channel": "email",
        "subject": "Des nouvelles",
        "body": "Bonjour {{ person.last_name }}",
        "body_html": "<p>Bonjour <b>{{ person.last_name }}</b> & {{ ccas.name }}</p>",
    },
}

# Taken from the launch before the change (same population, templates and settings).
GOLDEN: dict[str, str] = {
    "civility": "f0bbd00423a8740e0d17aab624200d83dd29e7c0c1820e5040f05b3ddbe1a4fe",
    "first_name": "9bf1fa43bc2f20083736a177c4a8fa253828add85ed710b0f2326dafe6df581c",
    "empty": "3ffd3efc92393db0848e5e6aff9ae858b157485ecef1e48c62eeb65f32fc1fe8",
    "index": "9cc2f2b2ded45218c966567a303f80b3aa525090c7a26baa0330912560f8bd3b",
    "folded": "041b71e3c8f8df4401bb59b124cae21981c04ef7d9ee5e03b83a8676143a396f",
    "long": "9ce3a0188a92d8fec63b5caddbc373ead0d17d6d48547544a09aa2d09c14b78e",
    "mention": "37588a842709cb00248b657ed432f46c7c3bb156f52222b22f339623671c3d09",
    "hotline": "dd32b6f3571446ffb2ccd2271e20661234f419305ae95fa3fa36dc3468803e85",
    "email": "4e1a26f58e28f30be13ee54d43d6dc75c0257a5a9bacdc2daff20798ef453716",
    "email_html": "6fd8cb7144b3c618c6459fb43ef55040c5fa70082ef6c2741409692067d98f0b",
}


async def _population() -> None:
    rng = random.Random(11)
    mobiles = [f"+3361{n:07d}" for n in range(1_900)]  # fewer than people: duplicates
    emails = [f"Personne.{n}@Exemple.org" for n in range(1_500)]
    people = []
    for i in range(PEOPLE):
        roll = rng.random()
        mobile = rng.choice(mobiles) if roll > 0.08 else None
        landline = f"+3332{i:07d}" if 0.03 < roll <= 0.08 else None
        email = rng.choice(emails) if rng.random() < 0.7 else None
        if email and rng.random() < 0.3:
            email = email.lower()
        if email and rng.random() < 0.05:
            email = f"  {email} "
        people.append(
            Person(
                civility=rng.choice(CIVILITIES),
                first_name=rng.choice(FIRST_NAMES) or "",
                last_name=rng.choice(LAST_NAMES),
                identity_key=f"p{i:05d}",
                mobile=mobile,
                landline=landline,
                email=email,
            )
        )
    await Person.bulk_create(people, batch_size=500)
    ids = await Person.all().order_by("identity_key").values_list("id", flat=True)
    memberships = []
    for i, pid in enumerate(ids):
        segment = "animations" if i % 17 == 0 else "domicilies"
        memberships.append(Membership(person_id=pid, segment=segment))
        if i % 5 == 0:  # two segments: the audience must not repeat the person
            memberships.append(Membership(person_id=pid, segment="aides_facultatives"))
    await Membership.bulk_create(memberships, batch_size=500)
    # Every 23rd mobile opted out; some others opted out once and lifted since.
    optouts = [
        OptOut(address=m, channel="sms", source="reply", active=n % 23 == 0)
        for n, m in enumerate(mobiles)
        if n % 23 == 0 or n % 41 == 5
    ]
    optouts += [OptOut(address=e.lower(), channel="email", source="link") for e in emails[::19]]
    optouts.append(OptOut(address=emails[3], channel="email", source="staff"))  # capitals kept
    await OptOut.bulk_create(optouts, batch_size=500)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


# What a message held when the digests were taken: a column added later is not launch's.
MESSAGE_COLUMNS = (
    "person_id", "channel", "address", "subject", "text", "html", "encoding", "segments",
    "status", "skip_reason", "error", "attempts", "next_attempt_at", "price", "claimed_by",
    "handed_at", "created_at", "sent_at", "settled_at",
)  # fmt: skip


async def make_campaign(
    *, settings: Settings, body: str, channel: str = "sms", subject: str | None = None,
    fold: bool = False, hotline: str | None = None,
) -> Campaign:  # fmt: skip
    """A draft campaign with names of this test's own (they are in the digests)."""
    template = await create_template(
        "Invitation", channel, TemplateContent(body, subject, fold_accents=fold), actor=ACTOR
    )
    audience = await Audience.create(name="Domiciliés", criteria={"segments_any": ["domicilies"]})
    return await lifecycle.create_campaign(
        name="Prendre des nouvelles",
        channel=channel,
        template_id=template.id,
        audience_id=audience.id,
        actor=ACTOR,
        settings=settings,
        now=T0,
        hotline=hotline,
    )


def _decisions(answer: dict[str, Any]) -> dict[str, Any]:
    # Warnings come from the campaign's settings and wording, decided elsewhere.
    return {k: v for k, v in answer.items() if k not in {"run", "warnings"}}


async def _launch_digest(
    name: str, spec: dict[str, Any], rt: Runtime
) -> tuple[str, dict[str, Any]]:
    rt.settings.sms_optout_mention = spec.get("mention")
    campaign = await make_campaign(
        settings=rt.settings,
        channel=spec.get("channel", "sms"),
        body=spec["body"],
        subject=spec.get("subject"),
        fold=spec.get("fold", False),
        hotline=spec.get("hotline"),
    )
    if "body_html" in spec:
        await campaign.fetch_related("template_version")
        await (
            type(campaign.template_version)
            .filter(id=campaign.template_version.id)
            .update(body_html=spec["body_html"])
        )
    preview = await campaign_launch.preview_launch(campaign.id, rt)
    result = await campaign_launch.launch(campaign.id, actor=ACTOR, runtime=rt)
    keys = dict(await Person.all().values_list("id", "identity_key"))
    rows = (
        await Message.filter(campaign_id=campaign.id).order_by("person_id").values(*MESSAGE_COLUMNS)
    )
    messages = [{"person": keys[row["person_id"]], **{k: _plain(v) for k, v in row.items()}}
                for row in rows]  # fmt: skip
    run = await CampaignRun.get(campaign_id=campaign.id)
    event = await AuditEvent.filter(action="campaign.launch", object_id=str(campaign.id)).first()
    summary = {
        "result": _decisions(result),
        "preview": _decisions(preview),
        "run": [run.number, run.recipients, run.skipped],
        "audit": event.detail if event else None,
        "messages": messages,
    }
    blob = json.dumps(summary, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest(), summary


@pytest.fixture
def rt(settings: Settings, db: str) -> Runtime:
    """The settings the digests were taken with, whatever the shared fixtures become."""
    settings.ccas_name = "CCAS"
    settings.ccas_hotline = "0800 000 000"
    settings.ccas_hours = "du lundi au vendredi de 9h à 17h"
    settings.public_url = "http://127.0.0.1:8080"
    settings.secret_key = "k" * 32
    settings.sms_price_per_part = Decimal("0.0650")
    settings.timezone = "Europe/Paris"
    return offline_runtime(settings, clock=lambda: T0, queue=RecordingQueue())


async def test_launch_gives_the_same_messages_as_before(rt: Runtime) -> None:
    """Every template on both engines: the digest of everything launch wrote and said."""
    await _population()
    digests: dict[str, str] = {}
    for name, spec in TEMPLATES.items():
        digest, summary = await _launch_digest(name, spec, rt)
        digests[name] = digest
        messages = summary["messages"]
        # One message per person of the audience, whatever the engine or the batch size.
        assert len(messages) == summary["result"]["audience_count"] == AUDIENCE
        assert summary["preview"]["recipients"] == summary["result"]["recipients"]
        for message in messages:
            if message["status"] == "queued" and message["channel"] == "sms":
                sms = analyse(message["text"])
                assert (sms.encoding, sms.segments) == (message["encoding"], message["segments"])
    assert digests == GOLDEN


async def test_every_skip_reason_is_exercised(rt: Runtime) -> None:
    """The population above is worth its digest: each decision happens, on every batch."""
    await _population()
    seen: dict[str, set[str]] = {}
    for name in ("civility", "empty", "index", "email"):
        _, summary = await _launch_digest(name, TEMPLATES[name], rt)
        seen[name] = {m["skip_reason"] or m["status"] for m in summary["messages"]}
    every = {"queued", "opted_out", "duplicate_address", "landline_only", "no_address"}
    assert seen["civility"] >= every
    assert "render_error" in seen["empty"] and "render_error" in seen["index"]
    assert seen["email"] >= {"queued", "opted_out", "duplicate_address", "no_address"}


async def test_a_failure_midway_leaves_nothing_and_the_next_launch_works(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader, the planner and the COPY stop together; the transaction keeps nothing."""
    await _population()
    campaign = await make_campaign(settings=rt.settings, body=TEMPLATES["civility"]["body"])
    original = CampaignRenderer.sms
    calls = 0

    def failing(self: CampaignRenderer, row: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 700:  # in the second batch (of 1,000 people): the first is being written
            raise RuntimeError("disk on fire")
        return original(self, row)

    monkeypatch.setattr(CampaignRenderer, "sms", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        await campaign_launch.launch(campaign.id, actor=ACTOR, runtime=rt)
    assert not await Message.exists(campaign_id=campaign.id)
    assert not await CampaignRun.exists(campaign_id=campaign.id)
    assert (await Campaign.get(id=campaign.id)).status == CampaignStatus.DRAFT
    monkeypatch.setattr(CampaignRenderer, "sms", original)
    result = await campaign_launch.launch(campaign.id, actor=ACTOR, runtime=rt)
    assert await Message.filter(campaign_id=campaign.id).count() == AUDIENCE
    assert result["audience_count"] == AUDIENCE


async def test_a_launch_inside_a_callers_transaction_sees_its_people(rt: Runtime) -> None:
    """People written by the surrounding transaction are in the audience (same connection)."""
    campaign = await make_campaign(settings=rt.settings, body=TEMPLATES["civility"]["body"])
    async with in_transaction():
        await _population()
        result = await campaign_launch.launch(campaign.id, actor=ACTOR, runtime=rt)
    assert result["audience_count"] == AUDIENCE
    assert await Message.filter(campaign_id=campaign.id).count() == AUDIENCE

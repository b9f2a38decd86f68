"""Probe of a campaign launch on PostgreSQL: 50,000 recipients materialised, timed.

Run: `python bench/launch_probe.py [--people 50000]` (PostgreSQL at
CAMPAIGNS_BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432). It creates a
database of its own and drops it at the end. Target (issue 3): launch under 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time

from bench_support import BASE_URL, admin, copy_people

from campaigns.campaign import launch as campaign_launch
from campaigns.campaign import lifecycle as campaign_service
from campaigns.core.audit import Actor
from campaigns.core.db import close_db, init_db, migrate
from campaigns.core.runtime import Runtime
from campaigns.core.settings import Settings
from campaigns.messages.template_store import TemplateContent, create_template
from campaigns.models import Audience, Message, OptOut

# One database per run: two runs at once must not drop each other's database.
DATABASE = f"campaigns_launch_probe_{os.getpid()}"
BODY = (
    "{{ ccas.name }} : Bonjour {{ person.civility }} {{ person.last_name }}, nous prenons de "
    "vos nouvelles. Appelez-nous au {{ ccas.hotline }}, {{ ccas.hours }}."
)


def _phones(i: int, rng: random.Random) -> tuple[str | None, str | None]:
    roll = rng.random()
    mobile = f"+336{i:08d}" if roll > 0.05 else None
    landline = "+33322334455" if 0.02 < roll <= 0.05 else None
    return mobile, landline


async def _populate(url: str, people: int) -> None:
    """People with COPY (the probe measures launch, not import); ~2% opted out, 3% landline."""
    mobiles = await copy_people(url, people, seed=3, source="probe", phones=_phones)
    await OptOut.bulk_create(
        [OptOut(address=m, channel="sms", source="probe") for m in mobiles[::50]]
    )


async def main(people: int) -> None:
    await admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    await admin(f'CREATE DATABASE "{DATABASE}"')
    url = f"{BASE_URL}/{DATABASE}"
    try:
        await migrate(url)
        await init_db(url)
        await _populate(url, people)
        settings = Settings(
            CAMPAIGNS_DATABASE_URL=url,
            CAMPAIGNS_SECRET_KEY="k" * 32,
            _env_file=None,  # type: ignore[call-arg]
        )
        runtime = Runtime(settings=settings)  # no queue: the launch alone is measured
        actor = Actor(None, "probe")
        template = await create_template("Probe", "sms", TemplateContent(BODY), actor=actor)
        audience = await Audience.create(name="Probe", criteria={"segments_any": ["domicilies"]})
        campaign = await campaign_service.create_campaign(
            name="Probe",
            channel="sms",
            template_id=template.id,
            audience_id=audience.id,
            actor=actor,
            settings=settings,
            now=runtime.clock(),
        )
        started = time.perf_counter()
        result = await campaign_launch.launch(campaign.id, actor=actor, runtime=runtime)
        elapsed = time.perf_counter() - started
        written = await Message.filter(campaign_id=campaign.id).count()
        print(f"launch of {people} recipients on PostgreSQL: {elapsed:.2f} s")
        print(
            f"  messages written {written}, queued {result['recipients']}, "
            f"skipped {result['skipped_by_reason']}, parts {result['parts']}"
        )
        print(f"  {written / elapsed:,.0f} messages/s (target: launch under 10 s)")
    finally:
        await close_db()
        await admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=50_000)
    asyncio.run(main(parser.parse_args().people))

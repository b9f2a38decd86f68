"""Shared by the escalation tests: people, staff and replies to escalate, at a fixed Paris time."""

from __future__ import annotations

import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

from campaigns.core.runtime import Runtime
from campaigns.models import Person, Reply, Role, Staff
from providers.console import read_outbox

PARIS = ZoneInfo("Europe/Paris")


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)  # type: ignore[misc]


async def make_person(referent_email: str | None = None, mobile: str = "+33612345678") -> Person:
    return await Person.create(
        last_name="Martin",
        first_name="Jeanne",
        identity_key=f"martin|jeanne|{uuid.uuid4().hex}",
        mobile=mobile,
        referent_email=referent_email,
    )


async def make_staff(
    email: str, role: Role = Role.CASEWORKER, queues: list[str] | None = None, active: bool = True
) -> Staff:
    return await Staff.create(
        email=email, role=role, password_hash="x", queues=queues or [], active=active
    )


async def make_reply(
    at: datetime,
    *,
    person: Person | None = None,
    msisdn: str = "+33612345678",
    text: str = "je suis tombée",
    candidates: list[int] | None = None,
) -> Reply:
    return await Reply.create(
        provider_message_id=uuid.uuid4().hex,
        msisdn=msisdn,
        text=text,
        received_at=at,
        person_id=person.id if person else None,
        candidate_ids=candidates if candidates is not None else ([person.id] if person else []),
    )


def at_clock(runtime: Runtime, now: datetime) -> None:
    runtime.clock = lambda: now


NOW = paris(2026, 3, 4, 10, 0)  # a Wednesday morning


def escalation_runtime(runtime: Runtime) -> Runtime:
    """The test runtime on Paris time, on a Wednesday morning."""
    # Explicit: Settings also reads a bare TIMEZONE variable, which tortoise sets to UTC.
    runtime.settings = runtime.settings.model_copy(update={"timezone": "Europe/Paris"})
    at_clock(runtime, NOW)
    return runtime


def emails(runtime: Runtime) -> list[dict]:
    return [r for r in read_outbox(runtime.settings.outbox_dir) if r["channel"] == "email"]

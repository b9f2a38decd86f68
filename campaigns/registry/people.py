"""People of the registry: search, view, rectify, erase and export, each access audited."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from tortoise.expressions import Q, Subquery
from tortoise.functions import Lower
from tortoise.transactions import in_transaction

from campaigns.core import audit
from campaigns.core.audit import Actor
from campaigns.core.clock import utcnow
from campaigns.core.errors import Conflict, Invalid, NotFound
from campaigns.models import (
    CallTask,
    Escalation,
    EscalationNote,
    EscalationStatus,
    InboundPart,
    Membership,
    Message,
    MessageStatus,
    OptOut,
    Person,
    Reply,
    Role,
    Staff,
)
from campaigns.registry.register_values import identity_key, normalize_email, normalize_header
from campaigns.rules.phones import PhoneKind, parse_phone

MAX_PAGE_SIZE = 200
# Digits enough to be worth reading as a phone number in a search.
PHONE_SEARCH_DIGITS = 6
# A caseworker keeps access to a person this long after resolving their escalation:
# follow-up calls (did the meal delivery start? is she back home?) happen in the days after.
FOLLOW_UP_ACCESS = timedelta(days=30)


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def summary(person: Person) -> dict[str, Any]:
    """What a list shows: enough to recognise someone, nothing more."""
    return {
        "id": person.id,
        "external_ref": person.external_ref,
        "civility": person.civility,
        "first_name": person.first_name,
        "last_name": person.last_name,
        "birth_date": _iso(person.birth_date),
        "district": person.district,
        "has_mobile": person.mobile is not None,
        "has_email": person.email is not None,
    }


def detail(person: Person) -> dict[str, Any]:
    return {
        "id": person.id,
        "external_ref": person.external_ref,
        "civility": person.civility,
        "first_name": person.first_name,
        "last_name": person.last_name,
        "birth_date": _iso(person.birth_date),
        "mobile": person.mobile,
        "landline": person.landline,
        "email": person.email,
        "preferred_channel": person.preferred_channel,
        "address": person.address,
        "district": person.district,
        "referent_email": person.referent_email,
        "last_contacted_at": _iso(person.last_contacted_at),
        "created_at": _iso(person.created_at),
        "updated_at": _iso(person.updated_at),
    }


def _membership(m: Membership) -> dict[str, Any]:
    return {
        "segment": m.segment,
        "source": m.source,
        "started_on": _iso(m.started_on),
        "category": m.category,
        "registered_by": m.registered_by,
        "acknowledged_on": _iso(m.acknowledged_on),
        "next_review_on": _iso(m.next_review_on),
        "emergency_contact": m.emergency_contact,
        "home_care_service": m.home_care_service,
    }


async def get_person(person_id: int) -> Person:
    person = await Person.get_or_none(id=person_id)
    if person is None:
        raise NotFound("Personne introuvable")
    return person


async def can_view_person(staff: Staff, person_id: int, *, now: datetime | None = None) -> bool:
    """Managers see everyone; a caseworker sees a person through a current escalation.

    Current: in a queue they work, and not resolved or resolved within
    ``FOLLOW_UP_ACCESS`` of ``now``. An escalation closed long ago grants nothing.
    """
    if staff.role in (Role.ADMIN, Role.COORDINATOR):
        return True
    queues = list(staff.queues or [])
    if not queues:
        return False
    # UTC: SQLite compares stored datetimes as UTC text.
    since = (now or utcnow()).astimezone(UTC) - FOLLOW_UP_ACCESS
    current = ~Q(status=EscalationStatus.RESOLVED) | Q(resolved_at__gte=since)
    return await Escalation.filter(current, person_id=person_id, queue__in=queues).exists()


def _search_conditions(q: str) -> list[Q]:
    conditions: list[Q] = []
    text = " ".join(q.split())
    digits = "".join(c for c in text if c.isdigit())
    phone = parse_phone(text) if len(digits) >= PHONE_SEARCH_DIGITS else None
    if phone is not None:
        conditions.append(
            Q(mobile=phone.e164) | Q(landline=phone.e164) | Q(external_ref__icontains=text)
        )
        return conditions
    # identity_key holds the folded names: "levy" finds "LÉVY", each word must match.
    for word in text.split():
        folded = normalize_header(word)
        either = Q(external_ref__icontains=word)
        if folded:
            either |= Q(identity_key__icontains=folded)
        if len(digits) >= 4 and word.isdigit():
            either |= Q(mobile__contains=word) | Q(landline__contains=word)
        conditions.append(either)
    return conditions


async def search(
    *,
    segment: str | None = None,
    q: str | None = None,
    page: int = 1,
    page_size: int = 50,
    actor: Actor | None = None,
) -> dict[str, Any]:
    """People by segment and free text (names, file number, phone), alphabetical, paginated.

    With an actor the listing is audited (counts only: the search text may be a name).
    """
    if page < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise Invalid(f"Page à partir de 1, taille entre 1 et {MAX_PAGE_SIZE}", code="bad_page")
    query = Person.all()
    if segment:
        query = query.filter(
            id__in=Subquery(Membership.filter(segment=segment).values("person_id"))
        )
    if q and q.strip():
        query = query.filter(*_search_conditions(q))
    total = await query.count()
    people = (
        # Without regard to case: "de Lattre" among the D, "durand" beside "DUPONT".
        await query.annotate(sort_last=Lower("last_name"), sort_first=Lower("first_name"))
        .order_by("sort_last", "sort_first", "id")
        .offset((page - 1) * page_size)
        .limit(page_size)
    )
    if actor is not None:
        await audit.record(
            actor,
            "people.search",
            "person",
            None,
            segment=segment,
            text_search=bool(q and q.strip()),
            shown=len(people),
            total=total,
        )
    return {
        "items": [summary(p) for p in people],
        "total": total,
        "page": page,
        "page_size": page_size,
    }


async def _opt_outs(person: Person) -> dict[str, bool]:
    addresses = [a for a in (person.mobile, person.landline, person.email) if a]
    found = await OptOut.filter(address__in=addresses, active=True).values_list(
        "address", flat=True
    )
    blocked = {str(address) for address in found}
    return {address: address in blocked for address in addresses}


async def view(person_id: int, *, actor: Actor) -> dict[str, Any]:
    """A person's record with segments and opt-out state; the access is audited."""
    person = await get_person(person_id)
    memberships = await Membership.filter(person_id=person.id).order_by("segment")
    opt_outs = await _opt_outs(person)
    await audit.record(actor, "person.view", "person", person.id)
    return {
        **detail(person),
        "memberships": [_membership(m) for m in memberships],
        "opt_outs": opt_outs,
        "sms_reachable": bool(person.mobile) and not opt_outs.get(person.mobile or "", False),
    }


class PersonPatch(BaseModel):
    """Rectifiable fields; a field left out is unchanged, null clears an optional one."""

    model_config = ConfigDict(extra="forbid")

    external_ref: str | None = Field(default=None, max_length=64)
    civility: str | None = Field(default=None, max_length=16)
    first_name: str | None = Field(default=None, max_length=100)
    last_name: str | None = Field(default=None, min_length=1, max_length=100)
    birth_date: date | None = None
    mobile: str | None = Field(default=None, max_length=40)
    landline: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=254)
    preferred_channel: Literal["sms", "email"] | None = None
    address: str | None = Field(default=None, max_length=255)
    district: str | None = Field(default=None, max_length=100)
    referent_email: str | None = Field(default=None, max_length=254)

    @field_validator("birth_date")
    @classmethod
    def _past(cls, value: date | None) -> date | None:
        if value is not None and (value > date.today() or value.year < 1900):
            raise ValueError("date de naissance impossible")
        return value


def _phone(value: str | None, *, mobile: bool) -> str | None:
    if value is None or not value.strip():
        return None
    phone = parse_phone(value)
    if phone is None:
        raise Invalid(f"Numéro de téléphone invalide : {value}", code="invalid_phone")
    if mobile and phone.kind is not PhoneKind.MOBILE:
        raise Invalid("Ce numéro n'est pas un portable : mettez-le en fixe", code="not_mobile")
    return phone.e164


def _email(value: str | None, name: str) -> str | None:
    if value is None or not value.strip():
        return None
    email = normalize_email(value)
    if email is None:
        raise Invalid(f"Adresse e-mail invalide ({name})", code="invalid_email")
    return email


def _cleaned(patch: PersonPatch) -> dict[str, Any]:
    given = patch.model_dump(exclude_unset=True)
    if "last_name" in given and given["last_name"] is None:
        raise Invalid("Le nom ne peut pas être vide", code="missing_name")
    values: dict[str, Any] = {}
    for name, value in given.items():
        if name == "mobile":
            value = _phone(value, mobile=True)
        elif name == "landline":
            value = _phone(value, mobile=False)
        elif name in ("email", "referent_email"):
            value = _email(value, name)
        elif isinstance(value, str):
            value = " ".join(value.split()) or None
        if name == "first_name" and value is None:
            value = ""
        if name == "last_name" and not value:
            raise Invalid("Le nom ne peut pas être vide", code="missing_name")
        values[name] = value
    return values


async def edit(person_id: int, patch: PersonPatch, *, actor: Actor) -> dict[str, Any]:
    """Rectify a record; the audit keeps the names of the changed fields, not their values."""
    person = await get_person(person_id)
    values = _cleaned(patch)
    changed = sorted(name for name, value in values.items() if getattr(person, name) != value)
    if "external_ref" in changed and values["external_ref"] is not None:
        clash = await Person.filter(external_ref=values["external_ref"]).exclude(id=person.id)
        if clash:
            raise Conflict("Ce numéro de dossier est déjà attribué", code="duplicate_ref")
    if changed:
        for name in changed:
            setattr(person, name, values[name])
        person.identity_key = identity_key(person.last_name, person.first_name, person.birth_date)
        await person.save()
        await audit.record(actor, "person.update", "person", person.id, fields=changed)
    return detail(person)


async def erase(person_id: int, *, actor: Actor) -> dict[str, int]:
    """A real delete: the person, memberships, escalations and notes go; opt-outs stay.

    Messages and replies keep their rows for the campaigns' counts, emptied of the texts
    and addresses that would still identify the person; queued messages are cancelled.
    """
    person = await get_person(person_id)
    async with in_transaction() as conn:
        memberships = await Membership.filter(person_id=person.id).using_db(conn).count()
        # Not yet sent: never sent now. Then the rows keep only what the counts need: the
        # rendered texts name the person, and a reply's text and payload are theirs.
        await (
            Message.filter(person_id=person.id, status=MessageStatus.QUEUED)
            .using_db(conn)
            .update(status=MessageStatus.CANCELLED)
        )
        messages = (
            await Message.filter(person_id=person.id)
            .using_db(conn)
            .update(person_id=None, text="", subject=None, html=None, address=None)
        )
        replies = (
            await Reply.filter(person_id=person.id)
            .using_db(conn)
            .update(person_id=None, candidate_ids=[], text="", payload={}, msisdn="")
        )
        # A shared number's replies stay (they may be the other holder's): only the link
        # to this person goes.
        numbers = [n for n in (person.mobile, person.landline) if n]
        shared = await Reply.filter(msisdn__in=numbers).using_db(conn) if numbers else []
        for reply in shared:
            if person.id in (reply.candidate_ids or []):
                reply.candidate_ids = [c for c in reply.candidate_ids if c != person.id]
                await reply.save(using_db=conn, update_fields=["candidate_ids"])
        # Parts of long SMS already assembled are copies of text the reply held.
        if numbers:
            await InboundPart.filter(msisdn__in=numbers, assembled=True).using_db(conn).delete()
        escalation_ids = await (
            Escalation.filter(person_id=person.id).using_db(conn).values_list("id", flat=True)
        )
        await EscalationNote.filter(escalation_id__in=escalation_ids).using_db(conn).delete()
        await Escalation.filter(id__in=escalation_ids).using_db(conn).delete()
        # Calls keep their rows for the coverage counts, without the notes that tell of them.
        calls = (
            await CallTask.filter(person_id=person.id)
            .using_db(conn)
            .update(person_id=None, notes=[])
        )
        await Membership.filter(person_id=person.id).using_db(conn).delete()
        await Person.filter(id=person.id).using_db(conn).delete()
    counts = {
        "memberships": memberships,
        "calls_detached": calls,
        "messages_detached": messages,
        "replies_detached": replies,
        "escalations_deleted": len(escalation_ids),
    }
    await audit.record(actor, "person.delete", "person", person_id, **counts)
    return counts


def _row(obj: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    return {name: _iso(getattr(obj, name)) for name in fields}


async def export(person_id: int, *, actor: Actor) -> dict[str, Any]:
    """Everything held on one person (right of access), as one JSON document; audited."""
    person = await get_person(person_id)
    memberships = await Membership.filter(person_id=person.id).order_by("segment")
    messages = await Message.filter(person_id=person.id).order_by("id")
    replies = await Reply.filter(person_id=person.id).order_by("received_at", "id")
    escalations = await Escalation.filter(person_id=person.id).order_by("id")
    notes = await EscalationNote.filter(escalation_id__in=[e.id for e in escalations]).order_by(
        "created_at", "id"
    )
    notes_by: dict[int, list[dict[str, Any]]] = {}
    for note in notes:
        notes_by.setdefault(note.escalation_id, []).append(  # type: ignore[attr-defined]
            _row(note, ("author_label", "text", "created_at"))
        )
    document = {
        "exported_at": utcnow().isoformat(),
        "person": detail(person),
        "memberships": [_membership(m) for m in memberships],
        "opt_outs": await _opt_outs(person),
        "messages": [
            _row(
                m,
                ("campaign_id", "channel", "address", "subject", "text", "status", "created_at"),
            )
            | {"sent_at": _iso(m.sent_at)}
            for m in messages
        ],
        "replies": [_row(r, ("msisdn", "text", "received_at", "label")) for r in replies],
        "escalations": [
            _row(e, ("queue", "status", "priority", "outcome", "created_at", "resolved_at"))
            | {"notes": notes_by.get(e.id, [])}
            for e in escalations
        ],
        "calls": [
            _row(c, ("campaign_id", "cycle", "status", "attempts", "outcome", "orientation"))
            | {"due_at": _iso(c.due_at), "notes": c.notes or []}
            for c in await CallTask.filter(person_id=person.id).order_by("id")
        ],
    }
    await audit.record(
        actor,
        "person.export",
        "person",
        person.id,
        messages=len(messages),
        replies=len(replies),
        escalations=len(escalations),
    )
    return document


__all__ = [
    "FOLLOW_UP_ACCESS",
    "PersonPatch",
    "can_view_person",
    "edit",
    "erase",
    "export",
    "get_person",
    "search",
    "summary",
    "view",
]

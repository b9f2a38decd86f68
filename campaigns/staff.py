"""Staff accounts: argon2 password hashes, roles, queues and bearer tokens; the audit journal."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from tortoise.expressions import F

from campaigns.core import audit
from campaigns.core.audit import Actor
from campaigns.core.clock import utcnow
from campaigns.core.errors import Conflict, Invalid, NotFound, Unauthorised
from campaigns.models import ApiToken, AuditEvent, Role, Staff

QUEUES = ("urgence", "rappel", "triage", "suivi")
# A new caseworker works the reply queues; the follow-up of injoignables is given on purpose.
CASEWORKER_QUEUES = ("urgence", "rappel", "triage")
# The role groups every guard uses: API routes and staff pages share this one table.
ADMINS: tuple[Role, ...] = (Role.ADMIN,)
MANAGERS: tuple[Role, ...] = (Role.ADMIN, Role.COORDINATOR)
ALL_ROLES: tuple[Role, ...] = (Role.ADMIN, Role.COORDINATOR, Role.CASEWORKER)
# Who may take calls: volunteers see nothing else (no register, no replies, no queues).
CALLERS: tuple[Role, ...] = (*ALL_ROLES, Role.BENEVOLE)
TOKEN_LIFETIME = timedelta(hours=12)
_hasher = PasswordHasher()
# Verifying against this keeps the response time the same for unknown e-mails.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def actor_for(staff: Staff) -> Actor:
    return Actor(staff.id, staff.email, staff.role.value)


def is_manager(staff: Staff) -> bool:
    """Managers see every queue and the whole registry; caseworkers their own queues."""
    return staff.role in MANAGERS


async def create_staff(
    email: str,
    role: Role | str,
    *,
    password: str | None = None,
    name: str = "",
    queues: list[str] | None = None,
    actor: Actor | None = None,
) -> tuple[Staff, str]:
    """Create an account; returns it with its password (generated when none is given)."""
    email = email.strip().lower()
    if "@" not in email:
        raise Invalid(f"Adresse e-mail invalide : {email!r}")
    try:
        role = Role(role)
    except ValueError:
        raise Invalid("Rôle inconnu : attendu admin, coordinator, caseworker ou benevole") from None
    if await Staff.filter(email=email).exists():
        raise Conflict(f"Un compte existe déjà pour {email}")
    if password is not None and len(password) < 10:
        raise Invalid("Le mot de passe doit compter au moins 10 caractères")
    generated = password is None
    password = password or generate_password()
    if queues is None:
        queues = list(CASEWORKER_QUEUES) if role is Role.CASEWORKER else []
    unknown = [q for q in queues if q not in QUEUES]
    if unknown:
        raise Invalid(f"File(s) inconnue(s) : {', '.join(unknown)}")
    staff = await Staff.create(
        email=email,
        name=name,
        role=role,
        password_hash=await asyncio.to_thread(hash_password, password),
        queues=queues,
        must_change_password=generated,
    )
    await audit.record(actor or Actor.cli(), "staff.create", "staff", staff.id, role=role.value)
    return staff, password


async def authenticate(email: str, password: str) -> Staff:
    staff = await Staff.get_or_none(email=email.strip().lower(), active=True)
    # argon2 takes tens of milliseconds on purpose: off the event loop, webhooks keep flowing.
    stored = staff.password_hash if staff is not None else _DUMMY_HASH
    if not await asyncio.to_thread(verify_password, stored, password) or staff is None:
        raise Unauthorised("Identifiants incorrects")
    staff.last_login_at = utcnow()
    await staff.save(update_fields=["last_login_at"])
    return staff


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue_token(staff: Staff, *, label: str = "") -> str:
    token = secrets.token_urlsafe(32)
    await ApiToken.create(
        token_hash=_token_hash(token),
        staff=staff,
        expires_at=utcnow() + TOKEN_LIFETIME,
        label=label[:100],
    )
    await audit.record(actor_for(staff), "auth.token", "staff", staff.id)
    return token


async def staff_for_token(token: str) -> Staff | None:
    if not token or len(token) > 200:
        return None
    row = await ApiToken.get_or_none(token_hash=_token_hash(token)).prefetch_related("staff")
    if row is None or row.revoked_at is not None or row.expires_at < utcnow():
        return None
    if not row.staff.active:
        return None
    return row.staff


async def end_sessions(staff: Staff, *, actor: Actor, reason: str) -> None:
    """End every page session (raise the version) and revoke every token of ``staff``."""
    now = utcnow()
    await Staff.filter(id=staff.id).update(session_version=F("session_version") + 1)
    await ApiToken.filter(staff_id=staff.id, revoked_at__isnull=True).update(revoked_at=now)
    await staff.refresh_from_db(fields=["session_version"])
    await audit.record(actor, "auth.sessions_ended", "staff", staff.id, reason=reason)


async def list_tokens(owner_id: int) -> list[ApiToken]:
    """The live tokens of one account, newest first (revoked and expired ones are gone)."""
    return (
        await ApiToken.filter(staff_id=owner_id, revoked_at__isnull=True, expires_at__gt=utcnow())
        .order_by("-created_at", "-id")
        .limit(500)
    )


async def revoke_token(by: Staff, token_id: int) -> ApiToken:
    """Revoke one token: its owner may, an admin may revoke anyone's."""
    row = await ApiToken.get_or_none(id=token_id)
    if row is None or (row.staff_id != by.id and by.role is not Role.ADMIN):  # type: ignore[attr-defined]
        # Someone else's token is not even said to exist.
        raise NotFound("Jeton introuvable")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await row.save(update_fields=["revoked_at"])
        await audit.record(
            actor_for(by),
            "auth.token_revoke",
            "staff",
            row.staff_id,  # type: ignore[attr-defined]
            token_id=row.id,
        )
    return row


async def set_role(staff_id: int, role: Role | str, *, actor: Actor) -> Staff | None:
    """Change an account's role; its sessions and tokens end (they carried the old rights)."""
    member = await Staff.get_or_none(id=staff_id)
    if member is None:
        return None
    try:
        new_role = Role(role)
    except ValueError:
        raise Invalid("Rôle inconnu : attendu admin, coordinator, caseworker ou benevole") from None
    if member.role is new_role:
        return member
    member.role = new_role
    await member.save(update_fields=["role"])
    await audit.record(actor, "staff.role", "staff", member.id, role=new_role.value)
    await end_sessions(member, actor=actor, reason="role")
    return member


async def set_password(staff: Staff, password: str, *, actor: Actor) -> None:
    if len(password) < 10:
        raise Invalid("Le mot de passe doit compter au moins 10 caractères")
    staff.password_hash = await asyncio.to_thread(hash_password, password)
    staff.must_change_password = False
    await staff.save(update_fields=["password_hash", "must_change_password"])
    await audit.record(actor, "staff.password", "staff", staff.id)
    # Whoever knew the old password may hold a session or a token: they all end.
    await end_sessions(staff, actor=actor, reason="password")


async def active_staff(staff_id: int) -> Staff | None:
    """The account a page session names, unless it was deactivated since."""
    return await Staff.get_or_none(id=staff_id, active=True)


async def list_staff() -> list[Staff]:
    return await Staff.all().order_by("-active", "email")


async def set_queues(staff_id: int, queues: list[str], *, actor: Actor) -> Staff | None:
    """Replace the queues an account works; unknown codes are dropped. None: no such account."""
    member = await Staff.get_or_none(id=staff_id)
    if member is None:
        return None
    member.queues = [q for q in queues if q in QUEUES]
    await member.save(update_fields=["queues"])
    await audit.record(actor, "staff.queues", "staff", member.id, queues=member.queues)
    return member


async def toggle_active(staff_id: int, *, actor: Actor) -> Staff | None:
    """Deactivate an active account or reactivate an inactive one. None: no such account."""
    member = await Staff.get_or_none(id=staff_id)
    if member is None:
        return None
    if member.id == actor.id:
        # An admin locking themselves out could leave the service without any admin.
        raise Invalid("Vous ne pouvez pas désactiver votre propre compte.", code="own_account")
    member.active = not member.active
    await member.save(update_fields=["active"])
    action = "staff.activate" if member.active else "staff.deactivate"
    await audit.record(actor, action, "staff", member.id)
    if not member.active:
        await end_sessions(member, actor=actor, reason="deactivation")
    return member


# --- the journal: what staff (and the system) did, for admins -------------------------
# campaigns.core.audit only writes the trail; reading it is an admin's task, like the
# accounts above, and needs nothing the core should know about (pages, filters).


@dataclass(frozen=True)
class JournalFilter:
    action: str = ""
    actor: str = ""  # part of the actor's label, any case
    object_type: str = ""
    object_id: str = ""
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


@dataclass(frozen=True)
class JournalPage:
    events: list[AuditEvent]
    total: int
    actions: list[str]  # every action ever recorded, for the filter's choices
    object_types: list[str]


async def journal(criteria: JournalFilter, *, offset: int, limit: int) -> JournalPage:
    """Audit events matching ``criteria``, newest first, one page of them."""
    query = AuditEvent.all()
    if criteria.action:
        query = query.filter(action=criteria.action)
    if criteria.actor:
        query = query.filter(actor_label__icontains=criteria.actor)
    if criteria.object_type:
        query = query.filter(object_type=criteria.object_type)
    if criteria.object_id:
        query = query.filter(object_id=criteria.object_id)
    if criteria.since is not None:
        query = query.filter(at__gte=criteria.since)
    if criteria.until is not None:
        query = query.filter(at__lt=criteria.until)
    total = await query.count()
    events = await query.order_by("-at", "-id").offset(offset).limit(limit)
    # tortoise types flat value lists as tuples: these are the plain strings.
    actions: list[str] = await (  # type: ignore[assignment]
        AuditEvent.all().distinct().order_by("action").values_list("action", flat=True)
    )
    types: list[str] = await (  # type: ignore[assignment]
        AuditEvent.all().distinct().order_by("object_type").values_list("object_type", flat=True)
    )
    return JournalPage(events, total, actions, types)

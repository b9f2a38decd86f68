"""Staff accounts (admins, coordinators, caseworkers, volunteers) and their API tokens."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class Role(StrEnum):
    ADMIN = "admin"
    COORDINATOR = "coordinator"
    CASEWORKER = "caseworker"
    # Takes call tasks from the pools of the call campaigns they are named on, nothing else.
    BENEVOLE = "benevole"


class Staff(Model):
    id = fields.IntField(primary_key=True)
    email = fields.CharField(max_length=254, unique=True)
    name = fields.CharField(max_length=200, default="")
    role = fields.CharEnumField(Role, max_length=20)
    password_hash = fields.CharField(max_length=200)
    # Queue codes this person works (`urgence`, `rappel`, `triage`, ...).
    queues: list[str] = fields.JSONField(default=list)
    phone = fields.CharField(max_length=20, null=True)
    active = fields.BooleanField(default=True)
    must_change_password = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_login_at = fields.DatetimeField(null=True)
    # Sessions carry the version they were opened under: raising it (logout, password or
    # role change, deactivation) ends every session of the account at once.
    session_version = fields.IntField(default=0)

    class Meta:
        table = "staff"

    def works(self, queue: str) -> bool:
        return queue in (self.queues or [])


class ApiToken(Model):
    id = fields.IntField(primary_key=True)
    # Only a hash is stored: a leaked database does not leak usable tokens.
    token_hash = fields.CharField(max_length=64, unique=True)
    staff: fields.ForeignKeyRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", related_name="tokens", on_delete=fields.CASCADE
    )
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()
    last_used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)
    # A short label staff give a token, to tell their tokens apart when revoking one.
    label = fields.CharField(max_length=100, default="")

    class Meta:
        table = "api_token"

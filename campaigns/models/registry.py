"""The CCAS registry: people, their segment memberships, opt-outs and saved audiences."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model

SEGMENTS = ("domicilies", "aides_facultatives", "animations", "registre_fragiles")


class Person(Model):
    id = fields.IntField(primary_key=True)
    external_ref = fields.CharField(max_length=64, null=True, unique=True)
    civility = fields.CharField(max_length=16, null=True)
    first_name = fields.CharField(max_length=100, default="")
    last_name = fields.CharField(max_length=100)
    # Case- and accent-folded "last|first|birth" used to recognise a person on re-import.
    identity_key = fields.CharField(max_length=255, db_index=False)
    birth_date = fields.DateField(null=True)
    mobile = fields.CharField(max_length=20, null=True)
    landline = fields.CharField(max_length=20, null=True)
    email = fields.CharField(max_length=254, null=True)
    preferred_channel = fields.CharField(max_length=8, default="sms")
    address = fields.CharField(max_length=255, null=True)
    district = fields.CharField(max_length=100, null=True)
    referent_email = fields.CharField(max_length=254, null=True)
    last_contacted_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    memberships: fields.ReverseRelation[Membership]

    class Meta:
        table = "person"
        indexes = (
            ("identity_key",),
            ("mobile",),
            ("email",),
            # Covers "district + has a mobile" audience counts with an index-only scan.
            ("district", "mobile", "id"),
            ("referent_email",),
            ("last_name", "first_name"),
        )

    @property
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class Membership(Model):
    id = fields.IntField(primary_key=True)
    person: fields.ForeignKeyRelation[Person] = fields.ForeignKeyField(
        "models.Person", related_name="memberships", on_delete=fields.CASCADE
    )
    segment = fields.CharField(max_length=40)
    source = fields.CharField(max_length=200, default="")
    started_on = fields.DateField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    # The fragile-people register keeps what CASF R121-2 allows, and nothing medical.
    category = fields.CharField(max_length=40, null=True)
    registered_by = fields.CharField(max_length=20, null=True)
    acknowledged_on = fields.DateField(null=True)
    next_review_on = fields.DateField(null=True)
    emergency_contact = fields.CharField(max_length=255, null=True)
    home_care_service = fields.CharField(max_length=255, null=True)

    class Meta:
        table = "membership"
        unique_together = (("person", "segment"),)
        indexes = (("segment", "person_id"),)


class OptOut(Model):
    """An address that must never receive anything, kept by address so it survives erasure."""

    id = fields.IntField(primary_key=True)
    address = fields.CharField(max_length=254, unique=True)
    channel = fields.CharField(max_length=8)
    active = fields.BooleanField(default=True)
    source = fields.CharField(max_length=32)
    reply_id = fields.IntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    lifted_at = fields.DatetimeField(null=True)
    lifted_by = fields.CharField(max_length=254, null=True)

    class Meta:
        table = "opt_out"


class Audience(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=200)
    # `filter` is taken by tortoise's Model; the API still calls it "filter".
    criteria: dict[str, Any] = fields.JSONField(default=dict)
    created_by_id = fields.IntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "audience"

"""Inbound replies, the parts of long replies, and the escalations caseworkers work."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model


class EscalationStatus(StrEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"


class InboundPart(Model):
    """A part of a concatenated SMS, held until the whole reply can be assembled."""

    id = fields.BigIntField(primary_key=True)
    provider_message_id = fields.CharField(max_length=64, unique=True)
    msisdn = fields.CharField(max_length=20)
    concat_ref = fields.CharField(max_length=16)
    total = fields.IntField()
    part = fields.IntField()
    text = fields.TextField(default="")
    received_at = fields.DatetimeField(auto_now_add=True)
    payload: dict[str, Any] = fields.JSONField(default=dict)
    assembled = fields.BooleanField(default=False)

    class Meta:
        table = "inbound_part"
        indexes = (("msisdn", "concat_ref"), ("assembled", "received_at"))


class Reply(Model):
    """One inbound SMS (a long one once assembled), matched, classified and acted upon."""

    id = fields.BigIntField(primary_key=True)
    # Unique by Vonage's id (the first part's for a long SMS): Vonage's retries land once.
    provider_message_id = fields.CharField(max_length=64, unique=True)
    msisdn = fields.CharField(max_length=20)
    to = fields.CharField(max_length=20, null=True)
    text = fields.TextField(default="")
    received_at = fields.DatetimeField()
    person_id = fields.IntField(null=True)
    # Every person holding this number: a shared phone makes several candidates.
    candidate_ids: list[int] = fields.JSONField(default=list)
    message_id = fields.BigIntField(null=True)
    campaign_id = fields.IntField(null=True)
    label = fields.CharField(max_length=12, null=True)
    rule = fields.CharField(max_length=64, null=True)
    opt_out_requested = fields.BooleanField(default=False)
    parts = fields.IntField(default=1)
    complete = fields.BooleanField(default=True)
    processed_at = fields.DatetimeField(null=True)
    # The escalation this reply fed, and when its opt-out confirmation SMS was claimed:
    # both make a retried processing job skip what it already did.
    escalation_id = fields.IntField(null=True)
    confirmation_sent_at = fields.DatetimeField(null=True)
    payload: dict[str, Any] = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)
    # Why the label: rules that fired, the model's probabilities, what decided (the inbox
    # shows it). Holds no personal data beyond the label's reasons.
    explanation: dict[str, Any] = fields.JSONField(default=dict)
    # Read in the inbox by a person, or archived as read by the service (a confident thanks).
    read_at = fields.DatetimeField(null=True)
    read_by_id = fields.IntField(null=True)
    auto_archived = fields.BooleanField(default=False)

    class Meta:
        table = "reply"
        indexes = (
            ("msisdn", "received_at"),
            ("person_id",),
            ("campaign_id", "label"),
            ("processed_at", "created_at"),
            ("read_at", "received_at"),
        )


class ReplyLabel(Model):
    """A staff correction of a reply's label: training data for the reply model.

    The text is read from the reply when the model is trained, never copied here, so
    erasing a person's replies also removes what the model could learn from them.
    """

    id = fields.IntField(primary_key=True)
    reply_id = fields.BigIntField()
    staff_id = fields.IntField(null=True)
    staff_label = fields.CharField(max_length=254)
    old_label = fields.CharField(max_length=12, null=True)
    new_label = fields.CharField(max_length=12)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "reply_label"
        indexes = (("reply_id",), ("created_at",))


class Escalation(Model):
    id = fields.IntField(primary_key=True)
    person_id = fields.IntField(null=True)
    msisdn = fields.CharField(max_length=20, null=True)
    queue = fields.CharField(max_length=32)
    priority = fields.IntField(default=0)
    status = fields.CharEnumField(EscalationStatus, max_length=10, default=EscalationStatus.OPEN)
    # "person:queue" while not resolved, null after: a unique column that works on
    # SQLite and PostgreSQL alike to keep one open escalation per (person, queue).
    open_key = fields.CharField(max_length=64, null=True, unique=True)
    assignee: fields.ForeignKeyNullableRelation[Any] = fields.ForeignKeyField(
        "models.Staff", related_name="escalations", null=True, on_delete=fields.SET_NULL
    )
    assignee_id: int | None  # the column tortoise adds for the relation above
    due_at = fields.DatetimeField()
    snoozed_until = fields.DatetimeField(null=True)
    outcome = fields.CharField(max_length=40, null=True)
    overdue_notified_at = fields.DatetimeField(null=True)
    multiple_candidates = fields.BooleanField(default=False)
    reply_ids: list[int] = fields.JSONField(default=list)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    claimed_at = fields.DatetimeField(null=True)
    resolved_at = fields.DatetimeField(null=True)
    resolved_by_id = fields.IntField(null=True)

    notes: fields.ReverseRelation[EscalationNote]

    class Meta:
        table = "escalation"
        indexes = (
            ("queue", "status", "priority", "due_at"),
            ("person_id",),
            ("assignee_id", "status"),
        )


class EscalationNote(Model):
    id = fields.IntField(primary_key=True)
    escalation: fields.ForeignKeyRelation[Escalation] = fields.ForeignKeyField(
        "models.Escalation", related_name="notes", on_delete=fields.CASCADE
    )
    author_id = fields.IntField(null=True)
    author_label = fields.CharField(max_length=254)
    text = fields.TextField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "escalation_note"

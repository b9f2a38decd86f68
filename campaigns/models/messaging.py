"""Templates, campaigns, their runs and the one message per recipient each run sends."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class MessageStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SUBMITTED = "submitted"
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"
    REJECTED = "rejected"
    SKIPPED = "skipped"
    UNCONFIRMED = "unconfirmed"
    CANCELLED = "cancelled"


class Template(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=200)
    channel = fields.CharField(max_length=8)
    current_version = fields.IntField(default=1)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    versions: fields.ReverseRelation[TemplateVersion]

    class Meta:
        table = "template"


class TemplateVersion(Model):
    """An immutable text: a campaign points at the exact version it sent."""

    id = fields.IntField(primary_key=True)
    template: fields.ForeignKeyRelation[Template] = fields.ForeignKeyField(
        "models.Template", related_name="versions", on_delete=fields.CASCADE
    )
    version = fields.IntField()
    subject = fields.CharField(max_length=255, null=True)
    body = fields.TextField()
    body_html = fields.TextField(null=True)
    fold_accents = fields.BooleanField(default=False)
    created_by_id = fields.IntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "template_version"
        unique_together = (("template", "version"),)


class Campaign(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=200)
    channel = fields.CharField(max_length=8)
    template_version: fields.ForeignKeyRelation[TemplateVersion] = fields.ForeignKeyField(
        "models.TemplateVersion", related_name="campaigns", on_delete=fields.RESTRICT
    )
    audience_id = fields.IntField(null=True)
    audience_snapshot: dict[str, Any] = fields.JSONField(default=dict)
    sender = fields.CharField(max_length=20, null=True)
    hotline = fields.CharField(max_length=40, null=True)
    expects_replies = fields.BooleanField(default=True)
    send_window = fields.CharField(max_length=100, null=True)
    status = fields.CharEnumField(CampaignStatus, max_length=12, default=CampaignStatus.DRAFT)
    status_reason = fields.CharField(max_length=255, null=True)
    scheduled_at = fields.DatetimeField(null=True)
    recurrence_days = fields.IntField(null=True)
    next_run_at = fields.DatetimeField(null=True)
    price_per_part = fields.DecimalField(max_digits=8, decimal_places=4, default=0)
    created_by_id = fields.IntField(null=True)
    launched_by_id = fields.IntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    launched_at = fields.DatetimeField(null=True)
    completed_at = fields.DatetimeField(null=True)
    # A journey's later steps (an SMS reminder, then calls) for those who stay silent:
    # {"reminder_days", "reminder_template_id", "call_days", "call_template_id"}.
    journey: dict[str, Any] | None = fields.JSONField(null=True)
    # A step campaign made by a journey points at the campaign that began it.
    parent_id = fields.IntField(null=True)
    step = fields.CharField(max_length=12, null=True)

    runs: fields.ReverseRelation[CampaignRun]

    class Meta:
        table = "campaign"
        indexes = (("status", "next_run_at"), ("parent_id",))


class CampaignRun(Model):
    """One occurrence of a campaign: a recurring campaign makes one per occurrence."""

    id = fields.IntField(primary_key=True)
    campaign: fields.ForeignKeyRelation[Campaign] = fields.ForeignKeyField(
        "models.Campaign", related_name="runs", on_delete=fields.CASCADE
    )
    number = fields.IntField()
    started_at = fields.DatetimeField(auto_now_add=True)
    completed_at = fields.DatetimeField(null=True)
    recipients = fields.IntField(default=0)
    skipped = fields.IntField(default=0)

    class Meta:
        table = "campaign_run"
        unique_together = (("campaign", "number"),)


class Message(Model):
    id = fields.BigIntField(primary_key=True)
    run: fields.ForeignKeyRelation[CampaignRun] = fields.ForeignKeyField(
        "models.CampaignRun", related_name="messages", on_delete=fields.CASCADE
    )
    campaign_id = fields.IntField()
    # Null once the person is erased: the message row stays for the campaign's counts.
    person_id = fields.IntField(null=True)
    channel = fields.CharField(max_length=8)
    address = fields.CharField(max_length=254, null=True)
    subject = fields.CharField(max_length=255, null=True)
    text = fields.TextField(default="")
    # The e-mail's HTML part as rendered at launch (the plain part is `text`).
    html = fields.TextField(null=True)
    encoding = fields.CharField(max_length=8, null=True)
    segments = fields.IntField(default=0)
    status = fields.CharEnumField(MessageStatus, max_length=12, default=MessageStatus.QUEUED)
    skip_reason = fields.CharField(max_length=32, null=True)
    error = fields.CharField(max_length=255, null=True)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField(null=True)
    price = fields.DecimalField(max_digits=10, decimal_places=5, null=True)
    claimed_by = fields.CharField(max_length=64, null=True)
    # Written just before the provider call (null while only claimed): after a crash a
    # message never handed over goes back to the queue, a handed one becomes unconfirmed.
    handed_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    sent_at = fields.DatetimeField(null=True)
    settled_at = fields.DatetimeField(null=True)

    class Meta:
        table = "message"
        unique_together = (("run", "person_id"),)
        indexes = (
            ("campaign_id", "status"),
            ("run_id", "status", "id"),
            ("address", "sent_at"),
            ("person_id",),
        )


class MessagePart(Model):
    """One provider id per SMS part: Vonage sends one receipt per part."""

    id = fields.BigIntField(primary_key=True)
    message: fields.ForeignKeyRelation[Message] = fields.ForeignKeyField(
        "models.Message", related_name="parts", on_delete=fields.CASCADE
    )
    provider_message_id = fields.CharField(max_length=64, unique=True)
    status = fields.CharField(max_length=12, default="submitted")
    err_code = fields.CharField(max_length=8, null=True)
    price = fields.DecimalField(max_digits=10, decimal_places=5, null=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "message_part"


class DeliveryReceipt(Model):
    """A delivery receipt as it arrived, stored append-only by the status webhook.

    The webhook writes one row and takes no lock on the message; a job applies pending
    rows to messages and parts in bulk (see `campaigns.dispatch.receipts`). Vonage's
    retries of a receipt land once: one row per part and status.
    """

    id = fields.BigIntField(primary_key=True)
    provider_message_id = fields.CharField(max_length=64)
    status = fields.CharField(max_length=12)
    err_code = fields.CharField(max_length=8, null=True)
    error_text = fields.CharField(max_length=255, default="")
    price = fields.DecimalField(max_digits=10, decimal_places=5, null=True)
    client_ref = fields.CharField(max_length=100, null=True)
    message_timestamp = fields.DatetimeField(null=True)
    received_at = fields.DatetimeField()
    # Null until applied. A receipt whose message is still being sent waits for dispatch
    # to record the send: it is looked at again from `due_at`.
    applied_at = fields.DatetimeField(null=True)
    due_at = fields.DatetimeField(null=True)
    outcome = fields.CharField(max_length=12, null=True)  # applied, unknown
    message_id = fields.BigIntField(null=True)

    class Meta:
        table = "delivery_receipt"
        unique_together = (("provider_message_id", "status"),)
        indexes = (("applied_at", "id"), ("received_at",))

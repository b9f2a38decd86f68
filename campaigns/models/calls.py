"""Call campaigns: one call task per (person, cycle), the callers named on a campaign."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model


class CallStatus(StrEnum):
    TODO = "todo"
    CLAIMED = "claimed"
    RETRY = "retry"
    DONE = "done"
    INJOIGNABLE = "injoignable"
    CANCELLED = "cancelled"


class CallOutcome(StrEnum):
    JOINT_RIEN = "joint_rien"
    JOINT_BESOIN = "joint_besoin"
    PAS_DE_REPONSE = "pas_de_reponse"
    MESSAGERIE = "messagerie"
    FAUX_NUMERO = "faux_numero"
    REFUS_APPELS = "refus_appels"


class CallTask(Model):
    """A call to make to one person in one cycle (a campaign run) of a call campaign.

    `assignee_id` null means the campaign's shared pool. Notes are kept on the task as a
    list (`at`, `by`, `text`): the script shows the notes of the person's earlier tasks in
    the same campaign and no others, which is all a volunteer may read.
    """

    id = fields.IntField(primary_key=True)
    campaign_id = fields.IntField()
    run: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "models.CampaignRun", related_name="call_tasks", on_delete=fields.CASCADE
    )
    run_id: int
    cycle = fields.IntField(default=1)
    # Null once the person is erased: the task stays for the campaign's counts.
    person_id = fields.IntField(null=True)
    assignee_id = fields.IntField(null=True)
    status = fields.CharEnumField(CallStatus, max_length=12, default=CallStatus.TODO)
    attempts = fields.IntField(default=0)
    due_at = fields.DatetimeField()
    outcome = fields.CharField(max_length=16, null=True)
    orientation = fields.CharField(max_length=32, null=True)
    escalation_id = fields.IntField(null=True)
    # Why the task exists: the cycle itself, a callback asked by SMS, a journey's call step.
    origin = fields.CharField(max_length=16, default="cycle")
    notes: list[dict[str, Any]] = fields.JSONField(default=list)
    claimed_at = fields.DatetimeField(null=True)
    last_attempt_at = fields.DatetimeField(null=True)
    completed_at = fields.DatetimeField(null=True)
    completed_by_id = fields.IntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "call_task"
        unique_together = (("run", "person_id"),)
        indexes = (
            ("campaign_id", "status", "due_at"),
            ("assignee_id", "status", "due_at"),
            ("person_id",),
        )


class CampaignCaller(Model):
    """A staff member (volunteers included) who takes a call campaign's pool."""

    id = fields.IntField(primary_key=True)
    campaign_id = fields.IntField()
    staff_id = fields.IntField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "campaign_caller"
        unique_together = (("campaign_id", "staff_id"),)
        indexes = (("staff_id",),)

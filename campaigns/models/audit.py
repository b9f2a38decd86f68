"""The append-only audit trail: who did what to which record, and when."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class AuditEvent(Model):
    id = fields.BigIntField(primary_key=True)
    at = fields.DatetimeField(auto_now_add=True)
    # Kept as plain values, not foreign keys: the trail must outlive staff and people.
    actor_id = fields.IntField(null=True)
    actor_label = fields.CharField(max_length=254)
    action = fields.CharField(max_length=64)
    object_type = fields.CharField(max_length=32)
    object_id = fields.CharField(max_length=64, null=True)
    # Counts, field names and codes only: never names, numbers or message texts.
    detail: dict[str, Any] = fields.JSONField(default=dict)

    class Meta:
        table = "audit_event"
        indexes = (("at",), ("object_type", "object_id"), ("actor_id", "at"), ("action", "at"))

    async def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._saved_in_db:
            await super().save(*args, **kwargs)
            return
        raise PermissionError("audit events are append-only")

    async def delete(self, *args: Any, **kwargs: Any) -> None:
        raise PermissionError("audit events are append-only")

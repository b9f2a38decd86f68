"""Writing the audit trail: every import, view, change and deletion of personal data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from campaigns.models import AuditEvent


@dataclass(frozen=True)
class Actor:
    """Who acts: a staff member, the CLI operator or the system itself."""

    id: int | None
    label: str
    role: str | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls(None, "système")

    @classmethod
    def cli(cls) -> Actor:
        return cls(None, "ligne de commande")


async def record(
    actor: Actor,
    action: str,
    object_type: str,
    object_id: int | str | None = None,
    **detail: Any,
) -> AuditEvent:
    """Append one event; `detail` holds codes and counts, never personal data."""
    return await AuditEvent.create(
        actor_id=actor.id,
        actor_label=actor.label,
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        detail=detail,
    )


async def record_many(
    actor: Actor, action: str, object_type: str, object_ids: list[int], **detail: Any
) -> None:
    if not object_ids:
        return
    await AuditEvent.bulk_create(
        [
            AuditEvent(
                actor_id=actor.id,
                actor_label=actor.label,
                action=action,
                object_type=object_type,
                object_id=str(object_id),
                detail=detail,
            )
            for object_id in object_ids
        ],
        batch_size=500,
    )


async def purge_before(moment: datetime) -> int:
    """Drop the events older than the retention period (DOMAIN.md: 6 to 12 months).

    The only deletion the trail knows, by age alone, never of chosen rows.
    """
    return await AuditEvent.filter(at__lt=moment).delete()

"""Opt-outs of calls, by number: "ne souhaite plus être appelé·e" stops calls, not SMS.

They live in the opt-out table beside SMS and e-mail ones, under a `tel:` address, so
they survive re-imports, merges and erasure like the others and never block an SMS.
"""

from __future__ import annotations

from collections.abc import Iterable

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from campaigns.core import audit
from campaigns.core.audit import Actor
from campaigns.models import OptOut

CALL_CHANNEL = "appel"
_PREFIX = "tel:"


def call_address(number: str) -> str:
    return f"{_PREFIX}{number}"


async def opted_out_numbers() -> set[str]:
    """Every number that must not be called (a set: a cycle checks thousands at once)."""
    rows = await OptOut.filter(channel=CALL_CHANNEL, active=True).values_list("address", flat=True)
    return {str(address)[len(_PREFIX) :] for address in rows}


async def opt_out_of_calls(
    numbers: Iterable[str], *, actor: Actor, source: str, task_id: int | None = None
) -> int:
    """Stop calls to these numbers; returns how many were not opted out already."""
    created = 0
    for number in dict.fromkeys(n for n in numbers if n):
        address = call_address(number)
        revived = await OptOut.filter(address=address, active=False).update(
            active=True, source=source, lifted_at=None, lifted_by=None
        )
        if revived:
            created += 1
            continue
        try:
            async with in_transaction():
                await OptOut.create(address=address, channel=CALL_CHANNEL, source=source)
            created += 1
        except IntegrityError:
            continue  # already opted out of calls
    if created:
        await audit.record(actor, "optout.calls", "call_task", task_id, numbers=created)
    return created

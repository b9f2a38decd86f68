"""A cycle's call tasks: one per reachable person of the audience, written in one pass.

A person is reachable by telephone when one of their numbers (mobile or landline) is not
opted out of calls. Each task goes to the person's referent when that caseworker is one of
the campaign's callers, else to whoever reached them in an earlier cycle (the same voice
every time, as Limoges does it), else to the campaign's shared pool.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from tortoise import connections

from campaigns.calls.callers import caller_ids
from campaigns.calls.optouts import opted_out_numbers
from campaigns.core.batch_insert import insert_rows
from campaigns.core.clock import as_utc
from campaigns.core.db import on_postgres
from campaigns.core.settings import Settings
from campaigns.models import CallStatus, CallTask, Campaign, Person
from campaigns.registry.audiences import audience_query
from campaigns.rules.queues import opening_window

# Outcomes that mean somebody spoke with the person.
REACHED = ("joint_rien", "joint_besoin", "refus_appels")
OPEN_STATUSES = (CallStatus.TODO, CallStatus.RETRY)
_ID_CHUNK = 5000
CALLER_MEMORY = 10


@dataclass
class CycleTasks:
    """What a cycle's generation did."""

    eligible: int = 0
    created: int = 0
    no_phone: int = 0
    opted_out: int = 0


def reachable(mobile: str | None, landline: str | None, opted_out: set[str]) -> bool:
    return any(n and n not in opted_out for n in (mobile, landline))


async def _people(
    criteria: dict[str, Any] | None, person_ids: Sequence[int] | None, today: date
) -> list[tuple[Any, ...]]:
    columns = ("id", "mobile", "landline", "referent_email")
    if person_ids is None:
        query = audience_query(criteria or {}, today).order_by("id")
        return [tuple(r) for r in await query.values_list(*columns)]
    rows: list[tuple[Any, ...]] = []
    ids = sorted(set(person_ids))
    for start in range(0, len(ids), _ID_CHUNK):
        chunk = ids[start : start + _ID_CHUNK]
        rows += [tuple(r) for r in await Person.filter(id__in=chunk).values_list(*columns)]
    return rows


async def last_callers(campaign_id: int, cycle: int) -> dict[int, int]:
    """Who last reached each person in the recent cycles (person id -> staff id).

    Only the last `CALLER_MEMORY` cycles are read: a campaign run every 3 days for years
    would otherwise read its whole history at each cycle.
    """
    rows = (
        await CallTask.filter(
            campaign_id=campaign_id,
            outcome__in=REACHED,
            completed_by_id__isnull=False,
            cycle__gte=cycle - CALLER_MEMORY,
        )
        .order_by("completed_at", "id")
        .values_list("person_id", "completed_by_id")
    )
    return {int(str(p)): int(str(s)) for p, s in rows if p is not None}


async def create_tasks(
    campaign: Campaign,
    run_id: int,
    cycle: int,
    *,
    settings: Settings,
    now: datetime,
    due_at: datetime | None = None,
    person_ids: Sequence[int] | None = None,
    origin: str = "cycle",
) -> CycleTasks:
    """Write the tasks of a cycle (or of the given people); a person with one already in
    this cycle keeps it: nobody is called twice in a cycle.

    The tasks are due at `due_at`, by default the CCAS's next open moment (now if open);
    the audience's ages are reckoned on the CCAS's own day.
    """
    due_at = as_utc(due_at or opening_window(settings).next_open(now))
    today = now.astimezone(settings.tz).date()
    people = await _people((campaign.audience_snapshot or {}).get("filter"), person_ids, today)
    opted_out = await opted_out_numbers()
    callers = await caller_ids(campaign.id)
    previous = await last_callers(campaign.id, cycle)
    active_callers = set(callers.values())
    result = CycleTasks()
    rows: list[dict[str, Any]] = []
    for person_id, mobile, landline, referent in people:
        if not (mobile or landline):
            result.no_phone += 1
            continue
        if not reachable(mobile, landline, opted_out):
            result.opted_out += 1
            continue
        result.eligible += 1
        assignee = callers.get(referent or "")
        if assignee is None and previous.get(person_id) in active_callers:
            assignee = previous[person_id]
        rows.append(
            {
                "campaign_id": campaign.id,
                "run_id": run_id,
                "cycle": cycle,
                "person_id": person_id,
                "assignee_id": assignee,
                "status": CallStatus.TODO,
                "due_at": due_at,
                "origin": origin,
            }
        )
    result.created = await _write(rows, now)
    return result


async def _write(rows: list[dict[str, Any]], now: datetime) -> int:
    """Insert the tasks, skipping people who have one in the cycle; returns how many.

    On PostgreSQL one statement over two arrays (the rest is the same for every row):
    converting 20,000 rows field by field was most of a cycle's time.
    """
    if not rows:
        return 0
    conn = connections.get("default")
    if not on_postgres(conn):
        return len(await insert_rows(CallTask, rows, now, key=("person_id",)))
    first = rows[0]
    inserted = await conn.execute_query_dict(
        'INSERT INTO "call_task" ("campaign_id", "run_id", "cycle", "person_id", "assignee_id", '
        '"status", "attempts", "due_at", "origin", "notes", "created_at", "updated_at") '
        "SELECT $1, $2, $3, t.p, t.a, $4, 0, $5, $6, '[]', $7, $7 "
        "FROM unnest($8::int[], $9::int[]) AS t(p, a) "
        'ON CONFLICT DO NOTHING RETURNING "id"',
        [
            first["campaign_id"], first["run_id"], first["cycle"], CallStatus.TODO.value,
            first["due_at"], first["origin"], now,
            [r["person_id"] for r in rows], [r["assignee_id"] for r in rows],
        ],
    )  # fmt: skip
    return len(inserted)


async def cancel_open_tasks(
    campaign_id: int, *, keep_run: int | None, now: datetime, person_ids: Iterable[int] = ()
) -> int:
    """Cancel what an earlier cycle left to do (claimed calls are being made: kept)."""
    query = CallTask.filter(campaign_id=campaign_id, status__in=list(OPEN_STATUSES))
    if keep_run is not None:
        query = query.exclude(run_id=keep_run)
    ids = list(person_ids)
    if ids:
        query = query.filter(person_id__in=ids)
    return await query.update(status=CallStatus.CANCELLED, completed_at=now, updated_at=now)

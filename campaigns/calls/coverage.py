"""Coverage of a call campaign's current cycle: who has been reached, by district and caller.

Counts are of the cycle's tasks (one per reachable person), so `eligible` is the number
of people with a number not opted out of calls when the cycle began. The lists a
coordinator works from come with it: the unreached, longest without contact first; the
overdue calls; the injoignables.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tortoise import Tortoise
from tortoise.functions import Count

from campaigns.calls.callers import call_campaign
from campaigns.calls.generation import OPEN_STATUSES, REACHED
from campaigns.calls.sheet import staff_names
from campaigns.core.db import placeholders
from campaigns.models import CallStatus, CallTask, CampaignRun, Person

# A call still open this long after its due time is late.
OVERDUE_AFTER = timedelta(hours=24)
LIST_LIMIT = 200
NO_DISTRICT = "Quartier non renseigné"


async def call_counts(campaign_id: int) -> dict[str, int]:
    """A call campaign's tasks by status, every cycle together."""
    rows = (
        await CallTask.filter(campaign_id=campaign_id)
        .annotate(n=Count("id"))
        .group_by("status")
        .values("status", "n")
    )
    counts = {status.value: 0 for status in CallStatus}
    for row in rows:
        counts[str(row["status"])] = int(row["n"])
    return counts


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


async def coverage(campaign_id: int, now: datetime) -> dict[str, Any]:
    campaign = await call_campaign(campaign_id)
    run = await CampaignRun.filter(campaign_id=campaign.id).order_by("-number").first()
    empty: dict[str, Any] = {
        "campaign_id": campaign.id,
        "cycle": 0,
        "cycle_started_at": None,
        "eligible": 0,
        "reached": 0,
        "unreached": 0,
        "injoignables": 0,
        "share_reached": 0.0,
        "by_district": {},
        "by_caller": {},
        "unreached_people": [],
        "overdue": [],
        "injoignable_people": [],
    }
    if run is None:
        return empty
    conn = Tortoise.get_connection("default")
    (mark,) = placeholders(1, conn)
    rows = await conn.execute_query_dict(
        'SELECT p."district" AS district, t."status" AS status, t."outcome" AS outcome, '
        't."completed_by_id" AS caller, t."assignee_id" AS assignee, COUNT(*) AS n '
        'FROM "call_task" t LEFT JOIN "person" p ON p."id" = t."person_id" '
        f'WHERE t."run_id" = {mark} GROUP BY 1, 2, 3, 4, 5',
        [run.id],
    )
    by_district: dict[str, dict[str, Any]] = {}
    by_caller_ids: dict[int, dict[str, int]] = {}
    eligible = reached = injoignables = 0
    for row in rows:
        n = int(row["n"])
        hit = row["outcome"] in REACHED and row["status"] == CallStatus.DONE.value
        eligible += n
        reached += n if hit else 0
        injoignables += n if row["status"] == CallStatus.INJOIGNABLE.value else 0
        district = by_district.setdefault(
            row["district"] or NO_DISTRICT, {"eligible": 0, "reached": 0}
        )
        district["eligible"] += n
        district["reached"] += n if hit else 0
        who = row["caller"] if hit else row["assignee"]
        if who is not None:
            caller = by_caller_ids.setdefault(
                int(who), {"reached": 0, "assigned_open": 0, "done": 0}
            )
            if hit:
                caller["reached"] += n
            if row["status"] in (s.value for s in (*OPEN_STATUSES, CallStatus.CLAIMED)):
                caller["assigned_open"] += n
            if row["status"] in (CallStatus.DONE.value, CallStatus.INJOIGNABLE.value):
                caller["done"] += n
    for values in by_district.values():
        values["share_reached"] = _share(values["reached"], values["eligible"])
    names = await staff_names(set(by_caller_ids))
    by_caller = {
        names.get(staff_id, str(staff_id)): {"staff_id": staff_id, **values}
        for staff_id, values in sorted(by_caller_ids.items())
    }
    return {
        **empty,
        "cycle": run.number,
        "cycle_started_at": run.started_at.isoformat(),
        "next_cycle_at": campaign.next_run_at.isoformat() if campaign.next_run_at else None,
        "eligible": eligible,
        "reached": reached,
        "unreached": eligible - reached,
        "injoignables": injoignables,
        "share_reached": _share(reached, eligible),
        "by_district": dict(sorted(by_district.items())),
        "by_caller": by_caller,
        "unreached_people": await _unreached(campaign.id, run.id),
        "overdue": await _overdue(run.id, now),
        "injoignable_people": await _people_of(
            CallTask.filter(run_id=run.id, status=CallStatus.INJOIGNABLE).order_by("completed_at")
        ),
    }


async def _people_of(query: Any) -> list[dict[str, Any]]:
    tasks: list[CallTask] = await query.limit(LIST_LIMIT)
    people = {
        p.id: p for p in await Person.filter(id__in=[t.person_id for t in tasks if t.person_id])
    }
    names = await staff_names({t.assignee_id for t in tasks})
    out = []
    for task in tasks:
        person = people.get(task.person_id or 0)
        out.append(
            {
                "task_id": task.id,
                "person_id": task.person_id,
                "name": person.display_name if person else "Personne effacée",
                "district": person.district if person else None,
                "status": task.status.value,
                "attempts": task.attempts,
                "due_at": task.due_at.isoformat(),
                "assignee": names.get(task.assignee_id or 0),
                "escalation_id": task.escalation_id,
            }
        )
    return out


async def _unreached(campaign_id: int, run_id: int) -> list[dict[str, Any]]:
    """The cycle's unreached, those reached longest ago (or never) first."""
    waiting = (
        await CallTask.filter(run_id=run_id)
        .exclude(status=CallStatus.DONE, outcome__in=REACHED)
        .values_list("id", "person_id")
    )
    last: dict[int, datetime] = {}
    for person_id, at in await CallTask.filter(
        campaign_id=campaign_id, outcome__in=REACHED, status=CallStatus.DONE
    ).values_list("person_id", "completed_at"):
        if person_id is not None and at is not None:
            last[int(str(person_id))] = max(at, last.get(int(str(person_id)), at))
    never = datetime.min.replace(tzinfo=None)
    order = sorted(
        waiting,
        key=lambda row: (
            last[row[1]].replace(tzinfo=None) if row[1] in last else never,
            row[0],
        ),
    )
    ids = [int(str(task_id)) for task_id, _ in order[:LIST_LIMIT]]
    rows = await _people_of(CallTask.filter(id__in=ids))
    rank = {task_id: i for i, task_id in enumerate(ids)}
    rows.sort(key=lambda r: rank[r["task_id"]])
    for row in rows:
        at = last.get(row["person_id"] or 0)
        row["last_reached_at"] = at.isoformat() if at else None
    return rows


async def _overdue(run_id: int, now: datetime) -> list[dict[str, Any]]:
    late = CallTask.filter(
        run_id=run_id,
        status__in=[*OPEN_STATUSES, CallStatus.CLAIMED],
        due_at__lt=now - OVERDUE_AFTER,
    ).order_by("due_at", "id")
    return await _people_of(late)

"""What a caller sees of a call: the call sheet, and nothing more.

A volunteer sees the person's first and last name, their numbers as `tel:` links, the
script rendered for them, the last contact and outcome, and the notes written in this
campaign. Never a birth date, an address, a segment (being domiciled or on an aid list is
sensitive), a reply, or the register. Every sheet shown is audited.
"""

from __future__ import annotations

from typing import Any

from campaigns.calls.optouts import opted_out_numbers
from campaigns.calls.outcomes import ORIENTATIONS, OUTCOME_LABELS
from campaigns.core import audit
from campaigns.core.settings import Settings
from campaigns.messages.rendering import TemplateError, render_sms_text
from campaigns.messages.template_store import ccas_vars, person_vars
from campaigns.messages.variables import CampaignVars, TemplateVars
from campaigns.models import CallTask, Campaign, Person, Staff, TemplateVersion
from campaigns.rules.phones import format_national
from campaigns.staff import actor_for


def task_row(task: CallTask, names: dict[int, str]) -> dict[str, Any]:
    """A task as the lists show it (ids and states only: no personal data)."""
    assignee = task.assignee_id
    return {
        "id": task.id,
        "person_id": task.person_id,
        "cycle": task.cycle,
        "status": task.status.value,
        "attempts": task.attempts,
        "assignee": {"id": assignee, "name": names.get(assignee, "")} if assignee else None,
        "due_at": task.due_at.isoformat(),
        "outcome": task.outcome,
        "orientation": task.orientation,
        "origin": task.origin,
    }


async def staff_names(ids: set[int | None]) -> dict[int, str]:
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return {}
    rows = await Staff.filter(id__in=wanted).values_list("id", "name", "email")
    return {int(str(i)): str(name or email) for i, name, email in rows}


def _phones(person: Person, blocked: set[str]) -> list[dict[str, str]]:
    phones = []
    for kind, label, number in (
        ("mobile", "Portable", person.mobile),
        ("fixe", "Fixe", person.landline),
    ):
        if number and number not in blocked:
            phones.append(
                {"kind": kind, "label": label, "number": format_national(number),
                 "href": f"tel:{number}"}
            )  # fmt: skip
    return phones


async def _script(campaign: Campaign, person: Person, settings: Settings) -> str:
    version = await TemplateVersion.get(id=campaign.template_version_id)  # type: ignore[attr-defined]
    variables = TemplateVars(
        person=person_vars(person.civility, person.first_name, person.last_name),
        ccas=ccas_vars(settings, campaign.hotline),
        campaign=CampaignVars(name=campaign.name),
    )
    try:
        return render_sms_text(version.body, variables, optout_mention=None)
    except TemplateError:
        # The script was checked at creation; a person's data it cannot take is no reason
        # to hide the call: the caller gets the raw script.
        return version.body


def _history(tasks: list[CallTask]) -> list[dict[str, Any]]:
    entries = []
    for task in tasks:
        for note in task.notes or []:
            outcome = note.get("outcome") or ""
            entries.append(
                {
                    "at": note.get("at"),
                    "by": note.get("by", ""),
                    "cycle": task.cycle,
                    "outcome": outcome,
                    "outcome_label": OUTCOME_LABELS.get(outcome, ""),
                    "text": note.get("text", ""),
                }
            )
    entries.sort(key=lambda e: e["at"] or "", reverse=True)
    return entries


async def call_sheet(staff: Staff, task: CallTask, settings: Settings) -> dict[str, Any]:
    """The call sheet of `task` for `staff` (who may see it: checked by the caller)."""
    campaign = await Campaign.get(id=task.campaign_id)
    person = await Person.get_or_none(id=task.person_id) if task.person_id else None
    sheet = task_row(task, await staff_names({task.assignee_id}))
    sheet["campaign"] = {"id": campaign.id, "name": campaign.name}
    sheet["max_attempts"] = settings.call_max_attempts
    sheet["outcomes"] = OUTCOME_LABELS
    sheet["orientations"] = ORIENTATIONS
    if person is None:
        sheet.update(person=None, phones=[], script="", history=[], last_contact=None)
    else:
        earlier = await CallTask.filter(campaign_id=campaign.id, person_id=person.id).order_by(
            "cycle", "id"
        )
        history = _history(earlier)
        sheet["person"] = {
            "id": person.id,
            "first_name": person.first_name,
            "last_name": person.last_name,
        }
        sheet["phones"] = _phones(person, await opted_out_numbers())
        sheet["script"] = await _script(campaign, person, settings)
        sheet["history"] = history
        sheet["last_contact"] = history[0] if history else None
    await audit.record(
        actor_for(staff), "call.view", "call_task", task.id, person_id=task.person_id
    )
    return sheet

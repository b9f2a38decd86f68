"""Escalations: the public face of the package, for the API, the staff pages and the jobs.

The work is split by responsibility (``lifecycle``, ``operations``, ``reading``,
``access``, ``assignment``, ``cron``, ``alerts``); callers that use several of them name
the package, ``from campaigns import escalations``, and find everything here.
"""

from campaigns.escalations.access import get_escalation, require_queue
from campaigns.escalations.cron import flag_overdue, wake_snoozed
from campaigns.escalations.lifecycle import (
    ACTIVE_STATUSES,
    REOPEN_WITHIN,
    STATUS_LABELS,
    escalate,
    is_overdue,
    open_key_for,
)
from campaigns.escalations.operations import (
    MAX_NOTE,
    add_note,
    claim,
    claim_next,
    reopen,
    resolve,
    snooze,
)
from campaigns.escalations.reading import escalation_view, list_escalations, person_history

__all__ = [
    "ACTIVE_STATUSES",
    "MAX_NOTE",
    "REOPEN_WITHIN",
    "STATUS_LABELS",
    "add_note",
    "claim",
    "claim_next",
    "escalate",
    "escalation_view",
    "flag_overdue",
    "get_escalation",
    "is_overdue",
    "list_escalations",
    "open_key_for",
    "person_history",
    "reopen",
    "require_queue",
    "resolve",
    "snooze",
    "wake_snoozed",
]

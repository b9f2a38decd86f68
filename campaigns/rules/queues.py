"""The escalation queues: their French labels, priorities, due-time rules and resolution outcomes.

Due times are configuration (``CAMPAIGNS_QUEUES``), written as
``urgence=1h,rappel=24oh,triage=48h``: ``h`` is elapsed time, ``oh`` (or ``ho``,
« heures ouvrées ») counts only the CCAS's opening hours, public holidays excluded.
A rule may also set the queue's priority: ``triage=48h:normale``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Protocol

from campaigns.rules.business_hours import due_at as business_due_at
from campaigns.rules.send_window import SendWindow, parse_send_window


class QueueSettings(Protocol):
    """What the queue rules need of the settings; rules stay below core, which imports them."""

    @property
    def queues(self) -> str: ...
    @property
    def opening_hours(self) -> str: ...
    @property
    def timezone(self) -> str: ...
    @property
    def holidays(self) -> str: ...


__all__ = [
    "DEFAULT_QUEUES_SPEC",
    "OUTCOMES",
    "PRIORITY_HIGH",
    "PRIORITY_LOW",
    "PRIORITY_NORMAL",
    "QUEUE_LABELS",
    "QueueRule",
    "compute_due_at",
    "opening_window",
    "parse_queue_rules",
    "priority_for",
    "priority_label",
    "rule_for",
    "rules_for",
]

PRIORITY_LOW = 1
PRIORITY_NORMAL = 2
PRIORITY_HIGH = 3
PRIORITY_LABELS = {PRIORITY_LOW: "basse", PRIORITY_NORMAL: "normale", PRIORITY_HIGH: "haute"}
_PRIORITY_WORDS = {
    "basse": PRIORITY_LOW,
    "low": PRIORITY_LOW,
    "normale": PRIORITY_NORMAL,
    "normal": PRIORITY_NORMAL,
    "haute": PRIORITY_HIGH,
    "high": PRIORITY_HIGH,
}

# Queue codes are those staff accounts may work (campaigns.staff.QUEUES).
QUEUE_LABELS: dict[str, str] = {
    "urgence": "Urgence",
    "rappel": "Rappel demandé",
    "triage": "À trier",
    # People a call campaign could not reach: a home visit or the emergency contact.
    "suivi": "Injoignables : visite ou contact",
}
_DEFAULT_PRIORITIES = {
    "urgence": PRIORITY_HIGH,
    "rappel": PRIORITY_NORMAL,
    "triage": PRIORITY_LOW,
    "suivi": PRIORITY_HIGH,
}
DEFAULT_QUEUES_SPEC = "urgence=1h,rappel=24oh,triage=48h,suivi=24oh"

# A distress reply is urgent whatever queue it lands in.
_LABEL_PRIORITIES = {"distress": PRIORITY_HIGH}

# How a call ends (DOMAIN.md, "Orientation"): a fixed list, so that reports can count them.
OUTCOMES: dict[str, str] = {
    "joint": "Joint·e, échange fait",
    "aide_domicile": "Orienté·e vers l'aide à domicile",
    "portage_repas": "Orienté·e vers le portage de repas",
    "courses": "Orienté·e vers les courses / conciergerie solidaire",
    "soutien_psychologique": "Orienté·e vers un soutien psychologique",
    "partenaire_sante": "Orienté·e vers un partenaire santé",
    "rien_a_signaler": "Rien à signaler",
    "injoignable": "Injoignable",
    "autre": "Autre",
}

_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(h|oh|ho)$")
_HELP = (
    "attendu « file=DURÉE[:PRIORITÉ] » séparés par des virgules, par exemple "
    f"« {DEFAULT_QUEUES_SPEC} » (h : heures écoulées, oh : heures d'ouverture ; "
    "priorité : haute, normale ou basse) ; files connues : " + ", ".join(QUEUE_LABELS)
)


@dataclass(frozen=True)
class QueueRule:
    """How long a queue's escalations may wait, and how urgent they are."""

    code: str
    label: str
    hours: float
    opening_hours: bool  # count only open time (holidays excluded) rather than elapsed time
    priority: int

    @property
    def describe(self) -> str:
        """The rule as a French phrase, for pages and e-mails."""
        amount = f"{self.hours:g} h"
        return f"{amount} d'ouverture" if self.opening_hours else amount


def parse_queue_rules(spec: str | None) -> dict[str, QueueRule]:
    """Every known queue's rule; ``spec`` overrides the defaults. ValueError names the problem."""
    rules = {code: _rule(code, text) for code, text in _split(DEFAULT_QUEUES_SPEC).items()}
    if spec and spec.strip():
        for code, text in _split(spec).items():
            if code not in QUEUE_LABELS:
                raise ValueError(f"file inconnue « {code} » : {_HELP}")
            rules[code] = _rule(code, text)
    return rules


def _split(spec: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        code, sep, value = item.partition("=")
        if not sep or not value.strip():
            raise ValueError(f"règle de file invalide « {item} » : {_HELP}")
        result[code.strip().lower()] = value.strip().lower()
    return result


def _rule(code: str, text: str) -> QueueRule:
    duration, _, priority_text = text.partition(":")
    match = _DURATION_RE.match(duration.strip())
    if match is None:
        raise ValueError(f"délai invalide « {duration} » pour la file « {code} » : {_HELP}")
    hours = float(match.group(1))
    if hours <= 0 or hours > 24 * 366:
        raise ValueError(f"délai hors bornes « {duration} » pour la file « {code} » : {_HELP}")
    priority = _DEFAULT_PRIORITIES[code]
    if priority_text:
        word = priority_text.strip()
        if word.isdigit() and int(word) in PRIORITY_LABELS:
            priority = int(word)
        elif word in _PRIORITY_WORDS:
            priority = _PRIORITY_WORDS[word]
        else:
            raise ValueError(f"priorité inconnue « {word} » pour la file « {code} » : {_HELP}")
    return QueueRule(
        code=code,
        label=QUEUE_LABELS[code],
        hours=hours,
        opening_hours=match.group(2) != "h",
        priority=priority,
    )


@lru_cache(maxsize=16)
def _cached_rules(spec: str) -> dict[str, QueueRule]:
    return parse_queue_rules(spec)


@lru_cache(maxsize=16)
def _cached_window(spec: str, tz: str, holidays: str) -> SendWindow:
    return parse_send_window(spec, tz, holidays)


def rules_for(settings: QueueSettings) -> dict[str, QueueRule]:
    """The queue rules of the settings (parsed once per distinct value)."""
    return dict(_cached_rules(settings.queues))


def rule_for(settings: QueueSettings, queue: str) -> QueueRule:
    rules = _cached_rules(settings.queues)
    try:
        return rules[queue]
    except KeyError:
        raise ValueError(f"file inconnue « {queue} »") from None


def opening_window(settings: QueueSettings) -> SendWindow:
    """The CCAS's opening hours (``CAMPAIGNS_OPENING_HOURS``) with its holiday calendar."""
    return _cached_window(settings.opening_hours, settings.timezone, settings.holidays)


def compute_due_at(rule: QueueRule, start: datetime, window: SendWindow) -> datetime:
    """When an escalation that started at ``start`` is due under ``rule``."""
    return business_due_at(start, rule.hours, window=window if rule.opening_hours else None)


def priority_for(rule: QueueRule, label: str | None) -> int:
    """The queue's priority, raised when the reply's label is more urgent than the queue."""
    return max(rule.priority, _LABEL_PRIORITIES.get(label or "", PRIORITY_LOW))


def priority_label(priority: int) -> str:
    if priority >= PRIORITY_HIGH:
        return PRIORITY_LABELS[PRIORITY_HIGH]
    return PRIORITY_LABELS.get(priority, PRIORITY_LABELS[PRIORITY_LOW])

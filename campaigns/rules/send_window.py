"""When messages may be sent: weekly opening hours in a time zone, minus public holidays.

The window is written as one short string (``CAMPAIGNS_SEND_WINDOW``), for example
``mon-sat 09:00-19:00``, ``lun-ven 09:00-12:00,14:00-18:00``,
``mon-fri 09:00-19:00; sat 09:00-12:00`` or ``always``. Holidays come from the
``holidays`` package (``CAMPAIGNS_HOLIDAYS``: ``FR``, ``FR-57``, ``FR-974``,
``alsace-moselle``, ``none``...). Every computation is done on aware datetimes and
in UTC, so daylight-saving changes never shift an opening by an hour.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

__all__ = [
    "DEFAULT_HOLIDAYS",
    "DEFAULT_SEND_WINDOW",
    "DEFAULT_TIMEZONE",
    "SendWindow",
    "parse_holidays",
    "parse_send_window",
]

DEFAULT_SEND_WINDOW = "mon-sat 09:00-19:00"
DEFAULT_TIMEZONE = "Europe/Paris"
DEFAULT_HOLIDAYS = "FR"

# How far ahead next_open() looks before deciding the window never opens: two years
# covers any real calendar (a window always has at least one open weekday).
_SEARCH_DAYS = 2 * 366

# closes_at() joins touching periods (mon-sun 00:00-24:00) for at most this many.
_MAX_CHAINED_PERIODS = 64

# "24:00" can only end a range; it is stored as time.max and means midnight.
_END_OF_DAY = time.max

_DAY_NAMES: dict[str, int] = {}
for _index, _names in enumerate(
    (
        ("mon", "monday", "lun", "lundi"),
        ("tue", "tuesday", "mar", "mardi"),
        ("wed", "wednesday", "mer", "mercredi"),
        ("thu", "thursday", "jeu", "jeudi"),
        ("fri", "friday", "ven", "vendredi"),
        ("sat", "saturday", "sam", "samedi"),
        ("sun", "sunday", "dim", "dimanche"),
    )
):
    for _name in _names:
        _DAY_NAMES[_name] = _index

_ALWAYS = {"always", "toujours", "24/7"}
_TIME_RE = re.compile(r"^(\d{1,2})(?:[:hH](\d{2})?)?$")

_WINDOW_HELP = (
    "attendu « always » ou « JOURS HH:MM-HH:MM[,HH:MM-HH:MM] » séparés par « ; », "
    "par exemple « mon-sat 09:00-19:00 », « lun-ven 09:00-12:00,14:00-18:00 » ou "
    "« mon-fri 09:00-19:00; sat 09:00-12:00 »"
)

# Our own names for the subdivisions of holidays.France, mapped to the package's codes.
# Alsace (67, 68) and Moselle (57) have the same two extra days (Good Friday, 26 December).
_SUBDIVISIONS: dict[str, str] = {
    "57": "57",
    "moselle": "57",
    "67": "6AE",
    "68": "6AE",
    "6ae": "6AE",
    "alsace": "6AE",
    "alsace-moselle": "6AE",
    "971": "971",
    "gp": "971",
    "guadeloupe": "971",
    "972": "972",
    "mq": "972",
    "martinique": "972",
    "973": "973",
    "gf": "973",
    "gy": "973",
    "guyane": "973",
    "974": "974",
    "re": "974",
    "reunion": "974",
    "réunion": "974",
    "la-reunion": "974",
    "la-réunion": "974",
    "976": "976",
    "yt": "976",
    "mayotte": "976",
    "bl": "BL",
    "mf": "MF",
    "pm": "PM",
}

_HOLIDAYS_HELP = (
    "attendu « none », « FR » (métropole) ou « FR-<territoire> » : FR-57, FR-67, FR-68 "
    "ou alsace-moselle, FR-971 (Guadeloupe), FR-972 (Martinique), FR-973 (Guyane), "
    "FR-974 (La Réunion), FR-976 (Mayotte), FR-BL, FR-MF, FR-PM"
)

Ranges = tuple[tuple[time, time], ...]


@dataclass(frozen=True)
class SendWindow:
    """Weekly opening hours in one time zone, closed on the calendar's holidays.

    ``weekly[d]`` holds the sorted, non-overlapping ``(start, end)`` ranges of weekday
    ``d`` (0 = Monday); ``end`` is exclusive and ``time.max`` stands for 24:00.
    ``always`` lifts every restriction, holidays included.
    """

    weekly: tuple[Ranges, ...]
    always: bool
    tz: ZoneInfo
    holidays: holidays.HolidayBase | None = field(default=None, compare=False, hash=False)
    holidays_spec: str = "none"
    spec: str = ""

    # --- descriptive accessors -------------------------------------------------------

    @property
    def days(self) -> frozenset[int]:
        """Weekdays (0 = Monday) with at least one open range."""
        return frozenset(day for day, ranges in enumerate(self.weekly) if ranges)

    @property
    def start(self) -> time:
        """Earliest opening time of the week (00:00 for ``always``)."""
        starts = [ranges[0][0] for ranges in self.weekly if ranges]
        return min(starts) if starts else time.min

    @property
    def end(self) -> time:
        """Latest closing time of the week (``time.max`` means 24:00)."""
        ends = [ranges[-1][1] for ranges in self.weekly if ranges]
        return max(ends) if ends else _END_OF_DAY

    def is_holiday(self, day: date) -> bool:
        """Whether ``day`` (a local date) is a public holiday of the window's calendar."""
        return self.holidays is not None and day in self.holidays

    # --- the rules ---------------------------------------------------------------------

    def is_open(self, at: datetime) -> bool:
        """Whether a message may be sent at the instant ``at`` (an aware datetime)."""
        _require_aware(at)
        if self.always:
            return True
        instant = at.astimezone(UTC)
        local_day = at.astimezone(self.tz).date()
        return any(opens <= instant < closes for opens, closes in self._periods(local_day))

    def next_open(self, at: datetime) -> datetime:
        """The first instant at or after ``at`` when the window is open, in the window's tz."""
        _require_aware(at)
        if self.always:
            return at.astimezone(self.tz)
        instant = at.astimezone(UTC)
        day = at.astimezone(self.tz).date()
        for offset in range(_SEARCH_DAYS):
            for opens, closes in self._periods(day + timedelta(days=offset)):
                if closes > instant:
                    return max(opens, instant).astimezone(self.tz)
        raise ValueError(f"la fenêtre d'envoi « {self.spec} » ne s'ouvre jamais")

    def closes_at(self, at: datetime) -> datetime | None:
        """When the open period containing ``at`` ends, in the window's tz.

        None when the window is closed at ``at`` or never closes (``always``). Periods
        that touch (``... 23:59-24:00`` then ``00:00-...`` on the next open day) are
        treated as one.
        """
        _require_aware(at)
        if self.always or not self.is_open(at):
            return None
        instant = at.astimezone(UTC)
        closes = None
        # A bounded walk: a window open around the clock would otherwise never end.
        for _ in range(_MAX_CHAINED_PERIODS):
            found = self._close_of_period_at(instant)
            if found is None:
                break
            closes = instant = found
            if not self.is_open(found):
                break
        return closes.astimezone(self.tz) if closes is not None else None

    def _close_of_period_at(self, instant: datetime) -> datetime | None:
        local_day = instant.astimezone(self.tz).date()
        for opens, closes in self._periods(local_day):
            if opens <= instant < closes:
                return closes
        return None

    def _periods(self, day: date) -> Iterator[tuple[datetime, datetime]]:
        """The open periods of a local date, as UTC instants."""
        if self.is_holiday(day):
            return
        for start, end in self.weekly[day.weekday()]:
            opens = _local_instant(day, start, self.tz)
            if end == _END_OF_DAY:
                closes = _local_instant(day + timedelta(days=1), time.min, self.tz)
            else:
                closes = _local_instant(day, end, self.tz)
            yield opens, closes


_WEEKDAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
_MONTHS = (
    "janvier", "février", "mars", "avril", "mai", "juin",
    "juillet", "août", "septembre", "octobre", "novembre", "décembre",
)  # fmt: skip


def french_moment(at: datetime, now: datetime) -> str:
    """When ``at`` is, as a French reader says it from ``now``: "demain à 09:00"."""
    local, today = at.astimezone(now.tzinfo), now.date()
    hour = f"{local:%H:%M}"
    days = (local.date() - today).days
    if days == 0:
        return f"aujourd'hui à {hour}"
    if days == 1:
        return f"demain à {hour}"
    weekday = _WEEKDAYS[local.weekday()]
    if days < 7:
        return f"{weekday} à {hour}"
    return f"{weekday} {local.day} {_MONTHS[local.month - 1]} à {hour}"


def closed_notice(window: SendWindow, now: datetime) -> str | None:
    """Why nothing is sent right now, in French; None while the window is open."""
    if window.is_open(now):
        return None
    local_now = now.astimezone(window.tz)
    opens = window.next_open(now)
    return f"fenêtre d'envoi fermée : envoi à partir de {french_moment(opens, local_now)}"


def _local_instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    # A wall time skipped by a spring-forward change (02:30 on the last Sunday of March)
    # resolves with the offset before the change, i.e. one hour later on the clock;
    # a repeated autumn time takes its first occurrence (fold=0).
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("a timezone-aware datetime is required")


# --- parsing ---------------------------------------------------------------------------


def parse_send_window(
    spec: str, tz: str = DEFAULT_TIMEZONE, holidays_spec: str = DEFAULT_HOLIDAYS
) -> SendWindow:
    """Build a SendWindow from its text form; raise ValueError naming what is expected."""
    zone = parse_timezone(tz)
    calendar = parse_holidays(holidays_spec)
    # Spaces around separators are noise: "mon, sat 09:00 - 19:00" reads as written.
    text = re.sub(r"\s*([,;-])\s*", r"\1", " ".join(spec.strip().lower().split()))
    if text in _ALWAYS:
        return SendWindow(
            weekly=((),) * 7,
            always=True,
            tz=zone,
            holidays=calendar,
            holidays_spec=holidays_spec.strip(),
            spec=spec.strip(),
        )
    if not text:
        raise ValueError(f"fenêtre d'envoi vide : {_WINDOW_HELP}")
    per_day: list[list[tuple[time, time]]] = [[] for _ in range(7)]
    for clause in text.split(";"):
        days, ranges = _parse_clause(clause, spec)
        for day in days:
            per_day[day].extend(ranges)
    return SendWindow(
        weekly=tuple(_merge(ranges) for ranges in per_day),
        always=False,
        tz=zone,
        holidays=calendar,
        holidays_spec=holidays_spec.strip(),
        spec=spec.strip(),
    )


def _parse_clause(clause: str, spec: str) -> tuple[set[int], list[tuple[time, time]]]:
    parts = clause.split(" ", 1)
    if len(parts) != 2:
        raise ValueError(f"fenêtre d'envoi invalide « {spec} » : {_WINDOW_HELP}")
    days_text, hours_text = parts
    days = _parse_days(days_text, spec)
    ranges = [_parse_range(item.strip(), spec) for item in hours_text.split(",")]
    return days, ranges


def _parse_days(text: str, spec: str) -> set[int]:
    days: set[int] = set()
    for item in text.split(","):
        first, _, last = item.partition("-")
        start = _day(first, spec)
        stop = _day(last, spec) if last else start
        # Ranges may wrap around the week: "sat-mon" is Saturday, Sunday, Monday.
        span = (stop - start) % 7
        days.update((start + step) % 7 for step in range(span + 1))
    return days


def _day(name: str, spec: str) -> int:
    try:
        return _DAY_NAMES[name.strip().rstrip(".")]
    except KeyError:
        raise ValueError(
            f"jour inconnu « {name} » dans la fenêtre d'envoi « {spec} » : attendu "
            "mon, tue, wed, thu, fri, sat, sun (ou lun, mar, mer, jeu, ven, sam, dim)"
        ) from None


def _parse_range(text: str, spec: str) -> tuple[time, time]:
    first, sep, last = text.partition("-")
    if not sep:
        raise ValueError(f"plage horaire invalide « {text} » dans « {spec} » : {_WINDOW_HELP}")
    start = _parse_time(first.strip(), spec, end=False)
    end = _parse_time(last.strip(), spec, end=True)
    if start >= end:
        raise ValueError(
            f"plage horaire invalide « {text} » dans « {spec} » : "
            "l'heure de début doit précéder l'heure de fin (pas de plage sur minuit)"
        )
    return start, end


def _parse_time(text: str, spec: str, *, end: bool) -> time:
    match = _TIME_RE.match(text)
    if match:
        hour, minute = int(match.group(1)), int(match.group(2) or 0)
        if end and (hour, minute) == (24, 0):
            return _END_OF_DAY
        if hour < 24 and minute < 60:
            return time(hour, minute)
    raise ValueError(
        f"heure invalide « {text} » dans la fenêtre d'envoi « {spec} » : "
        "attendu HH:MM entre 00:00 et 24:00"
    )


def _merge(ranges: list[tuple[time, time]]) -> Ranges:
    """Sort ranges and join those that overlap or touch, so each period is maximal."""
    merged: list[tuple[time, time]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)


def parse_timezone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (e.g. Europe/Paris, Indian/Reunion); ValueError if unknown."""
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"fuseau horaire inconnu « {name} » : attendu un nom IANA comme Europe/Paris, "
            "Indian/Reunion, Indian/Mayotte, America/Martinique, America/Cayenne"
        ) from None


# holidays builds its country classes at import; its stubs do not name them.
_france: type[holidays.HolidayBase] = holidays.country_holidays("FR").__class__


def parse_holidays(spec: str) -> holidays.HolidayBase | None:
    """The public-holiday calendar named by ``spec``, or None for ``none``."""
    text = spec.strip().lower().replace("_", "-").replace(" ", "-")
    if text in {"none", "aucun", "off", ""}:
        return None
    if text in {"fr", "france", "fr-metropole", "fr-métropole"}:
        return _france(language="fr")
    code = text.removeprefix("fr-")
    subdivision = _SUBDIVISIONS.get(code)
    if subdivision is None or subdivision not in _france.subdivisions:
        raise ValueError(f"calendrier de jours fériés inconnu « {spec} » : {_HOLIDAYS_HELP}")
    return _france(subdiv=subdivision, language="fr")

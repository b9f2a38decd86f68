"""The callback time a person asks for in a French SMS reply, as an aware datetime.

Read with or without accents, capitals or hyphens:

* clock times: ``14h``, ``14 h 30``, ``15:00``, ``16 heures``, ``midi (et demi)``, ``8h du
  soir``; ``1h``-``6h`` alone mean the afternoon (nobody asks for a call at 3 a.m.);
* before them, ``à``/``vers`` mean that time; ``après``, ``à partir de``, ``dès``, ``pas
  avant`` a lower bound, met now once passed, as is a range (``de 9h à 12h``); ``avant``
  an upper bound (now, or the next morning); ``jusqu'à`` too, unless the person is busy;
* parts of the day: ``matin`` 09:00, ``fin de matinée`` 11:00, ``après-midi``/``aprem``
  14:00, ``fin d'après-midi`` 17:00, ``soir`` 18:00 (now if today's is under way);
* days: ``aujourd'hui``, ``(après-)demain``, weekdays (a week ahead when it is today's),
  ``ce week-end``, ``la semaine prochaine`` (Monday), ``fin de semaine`` (Friday), ``le 3
  décembre``, ``le 1er janvier``, ``le 3/12``, ``le 8 à 14h``; alone, a day means 09:00;
* ``dans une heure`` (``deux heures``, ``1h30``, ``une demi-heure``, ``30 min``, ``2
  jours``...); ``maintenant``, ``tout de suite``, ``dans l'heure`` mean now; ``pas le
  matin`` the afternoon, ``pas aujourd'hui`` tomorrow; ``sauf le mercredi`` is ignored.

A clock time already past today means tomorrow ("à 9h" at 11:00). "plus tard", "tout à
l'heure", "dès que possible" name no moment and give None: the caller's own retry delay
applies. Phone numbers, amounts, ages and durations ("pendant 2h", "3h de route") are not
times. Times are read in ``window.tz``, else in ``now``'s zone; a moment when the window
is closed becomes its next opening.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, time, timedelta, tzinfo

from campaigns.rules.send_window import SendWindow

__all__ = ["requested_callback"]

_DEFAULT_HOUR = time(9, 0)  # a day named without a time: the start of a working morning

# Phone numbers (06 12 34 56 78, +33 6...) and digit runs go first: their pairs are not hours.
_PHONE = re.compile(r"(?:\+\s*33\s*\(?0?\)?\s*|\b0)[1-9](?:[\s.\-]*\d{2}){4}\b")
_DIGIT_RUN = re.compile(r"\d{5,}")
# A duration is not a moment: "pendant 2 heures", "depuis 8h", "il y a 2h".
_DURATION = re.compile(r"\b(?:pendant|depuis|durant|il y a) \d+ ?(?:heures?|h|min\w*)(?![a-z])")
# Every spelling of the afternoon becomes one word before "midi" can be read as noon.
_AFTERNOON = re.compile(r"\b(?:apres\s*midi|ap\s+midi|apr?em|apm|apres (?:le )?dejeuner)\b")
_WEEKDAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
_WEEKDAY_RE = re.compile(rf"\b({'|'.join(_WEEKDAYS)})\b")
_NEGATED = (
    # "sauf le mercredi", "pas demain": a day excluded is not the day asked for.
    (re.compile(rf"\b(?:sauf|pas|sans|hors) (?:le )?(?:{_WEEKDAY_RE.pattern}|demain)"), " "),
    (re.compile(r"\bpas (?:le |ce |en |dans la )?matin(?:ee)?\b"), "aprem"),
    (re.compile(r"\bpas (?:l |cet |cette |en |dans l )?aprem\b"), "matin"),
    (re.compile(r"\bpas (?:le |ce |en |dans la )?soir(?:ee)?\b"), "matin"),
    (re.compile(r"\bpas aujourd hui\b"), "demain"),
)
_AFTER = {"apres", "a partir de", "a partir d", "des", "pas avant", "plus tard que"}
_BEFORE = {"avant", "jusqu a", "jusqua", "au plus tard a"}
_BUSY = re.compile(
    r"\b(?:travail\w*|boulot|bosse|taf|occupee?s?|pas dispo\w*|indisponible|reunion|rdv|"
    r"rendez vous|cours|ecole|rentre|sors?)\b"
)
_CLOCK = re.compile(
    r"(?:\b(?P<prefix>pas avant|a partir de|a partir d|plus tard que|au plus tard a|apres|"
    r"des|vers|avant|jusqu a|jusqua|entre|de|a)\s+)?\b(?:"
    # "14h", "14 h 30", "16 heures"; minutes never the next hour of "14h-16h".
    r"(?P<hour>\d{1,2})\s*(?:heures?|h)(?![a-z])"
    r"(?:\s*(?P<minute>\d{2})(?!\s*(?:heures?|h)(?![a-z])))?"
    r"|(?P<chour>\d{1,2})\s*:\s*(?P<colon>\d{2})"
    r"|(?P<noon>midi)(?P<half>\s+et\s+demie?)?"
    r")(?:\s+(?P<suffix>du matin|du soir|de l aprem|de la nuit))?"
)
# Parts of the day: (pattern, start, end of the part for "under way" today).
_PERIODS = (
    (r"debut de matinee", time(9), time(10)),
    (r"fin de matinee", time(11), time(12)),
    (r"debut d aprem", time(14), time(15)),
    (r"fin d aprem|fin de (?:la )?journee", time(17), time(18)),
    (r"aprem", time(14), time(18)),
    (r"matin(?:ee)?", time(9), time(12)),
    (r"debut de soiree|soir(?:ee)?", time(18), time(22)),
)
_PERIOD_RES = tuple((re.compile(rf"\b(?:{p})\b"), start, end) for p, start, end in _PERIODS)
# "dans l'heure" is within the hour: as soon as possible.
_NOW_WORDS = re.compile(r"\b(?:maintenant|tout de suite|immediatement|dans l heure)\b")
_NUMBER_WORDS = dict(un=1, une=1, deux=2, trois=3, cinq=5, dix=10, quinze=15, vingt=20, trente=30)
_DELAY = re.compile(
    rf"\bdans (?:(?P<n>\d+|{'|'.join(_NUMBER_WORDS)})\s*(?:petite )?(?P<unit>heures?|h|"
    r"minutes?|mins?|mn|jours?|semaines?)(?![a-z])(?:\s*(?P<min>\d\d))?(?P<half> et demie?)?"
    r"|(?P<demi>une demi heure)|(?P<quart>un quart d heure))"
)
_MONTHS = (
    "janv(?:ier)?", "fevr?(?:ier)?", "mars", "avr(?:il)?", "mai", "juin", "juil(?:let)?",
    "aout", "sept(?:embre)?", "oct(?:obre)?", "nov(?:embre)?", "dec(?:embre)?",
)  # fmt: skip
_NAMED_DATE = re.compile(
    rf"\b(?P<day>\d\d?)(?:er)?\s+(?P<month>{'|'.join(_MONTHS)})\b(?:\s+(?P<year>20\d\d))?"
)
# After "le" only: "3/12" alone may be a fraction; "le 8" needs a time or an end after it.
_SLASH_DATE = re.compile(r"\ble (?P<day>\d{1,2})/(?P<month>\d{1,2})(?:/(?P<year>\d{2,4}))?\b")
_MONTH_DAY = re.compile(
    r"\ble (?P<day>\d\d?)(?:er)?(?=\s*$|\s*[,.!?]| (?:a|au|vers|apres|matin|aprem|soir)\b| \d)"
)
# "3h de dialyse", "14h de route": a duration, unless a word like "à" comes before.
_DURATION_AFTER = re.compile(r"\s+(?:de|du|des|d)\s+(?!preference)")
# A clock time, its kind ("at", "after": a lower bound, "before": an upper bound) and the
# end of the range it opens ("de 9h à 12h"), if any.
_Clock = tuple[time, str, time | None]
_RANGE_GAP = re.compile(r"\s*(?:et|ou)?\s*")


def requested_callback(text: str, now: datetime, window: SendWindow | None) -> datetime | None:
    """The moment ``text`` asks to be called back, or None when it names none."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("a timezone-aware datetime is required")
    zone: tzinfo = window.tz if window is not None else now.tzinfo
    moment = _moment(_normalise(text), now.astimezone(zone))
    if moment is None:
        return None
    # The centre may be closed then (Sunday, night, holiday): its next opening instead.
    return window.next_open(moment) if window is not None else moment.astimezone(zone)


def _normalise(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.lower())
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    folded = _DIGIT_RUN.sub(" ", _PHONE.sub(" ", folded))
    # Apostrophes and hyphens separate words: "aujourd'hui", "après-midi", "14h-16h".
    folded = " ".join(re.sub(r"['’`\-]", " ", folded).split())
    folded = _AFTERNOON.sub("aprem", _DURATION.sub(" ", folded))
    for pattern, replacement in _NEGATED:
        folded = pattern.sub(replacement, folded)
    return folded


def _moment(text: str, now: datetime) -> datetime | None:
    if _NOW_WORDS.search(text):
        return now
    delay = _DELAY.search(text)
    days = _delay_days(delay) if delay else None
    if delay and days is None:
        return now + _delay_time(delay)
    day = now.date() + timedelta(days=days) if days is not None else _named_day(text, now)
    clock = _clock(text)
    if clock is not None:
        return _at_clock(clock, day, now)
    for pattern, start, end in _PERIOD_RES:
        if pattern.search(text):
            return _at_period(start, end, day, now)
    if day is None:
        return None
    return now if day == now.date() else datetime.combine(day, _DEFAULT_HOUR, now.tzinfo)


def _delay_days(delay: re.Match[str]) -> int | None:
    """Days ahead for "dans 2 jours" or "dans une semaine"; None for hours and minutes."""
    unit = delay["unit"] or ""
    weeks = unit.startswith("semaine")
    return _count(delay) * (7 if weeks else 1) if weeks or unit.startswith("jour") else None


def _count(delay: re.Match[str]) -> int:
    return _NUMBER_WORDS.get(delay["n"]) or int(delay["n"])


def _delay_time(delay: re.Match[str]) -> timedelta:
    if delay["demi"] or delay["quart"]:
        return timedelta(minutes=30 if delay["demi"] else 15)
    if delay.group("unit").startswith("h"):
        extra = int(delay.group("min") or 0) + (30 if delay.group("half") else 0)
        return timedelta(hours=_count(delay), minutes=extra)
    return timedelta(minutes=_count(delay))


def _named_day(text: str, now: datetime) -> date | None:
    today = now.date()
    explicit = _explicit_date(text, today)
    if explicit is not None:
        return explicit
    if re.search(r"\bapres demain\b", text):
        return today + timedelta(days=2)
    if re.search(r"\b(?:demain|dem1|dmain)\b", text):
        return today + timedelta(days=1)
    weekday = _WEEKDAY_RE.search(text)
    if weekday:
        return _next_weekday(today, _WEEKDAYS.index(weekday.group(1)))
    if re.search(r"\bsemaine pro\w*", text):
        return _next_weekday(today, 0)
    if re.search(r"\bfin de (?:la )?semaine\b", text):
        return _next_weekday(today, 4)
    if re.search(r"\bweek ?end\b", text):
        return _next_weekday(today, 5)
    if re.search(r"\b(?:aujourd hui|auj|ce matin|ce soir|cet aprem)\b", text):
        return today
    return None


def _next_weekday(today: date, weekday: int) -> date:
    # The coming one; today's own weekday means a week ahead ("mardi" said on a Tuesday).
    return today + timedelta(days=(weekday - today.weekday() - 1) % 7 + 1)


def _explicit_date(text: str, today: date) -> date | None:
    named = _NAMED_DATE.search(text)
    if named:
        month = next(i + 1 for i, m in enumerate(_MONTHS) if re.fullmatch(m, named.group("month")))
        return _valid_date(int(named["day"]), month, named.group("year"), today)
    slash = _SLASH_DATE.search(text)
    if slash:
        return _valid_date(int(slash["day"]), int(slash["month"]), slash["year"], today)
    alone = _MONTH_DAY.search(text)
    if alone is None:
        return None
    # "le 8": the next 8th, this month if still ahead, else a following month.
    for step in range(3):
        year, month = divmod(today.year * 12 + today.month - 1 + step, 12)
        found = _valid_date(int(alone["day"]), month + 1, str(year), today)
        if found is not None and found >= today:
            return found
    return None


def _valid_date(day: int, month: int, year: str | None, today: date) -> date | None:
    try:
        full_year = int(year) + (2000 if len(year) == 2 else 0) if year else today.year
        found = date(full_year, month, day)
        if year is None and found < today:  # "le 15 janvier" in December: next year's
            found = date(today.year + 1, month, day)
        return found if found >= today else None
    except ValueError:
        return None


def _clock(text: str) -> _Clock | None:
    """The first clock time that is not only an upper bound, else the first one."""
    found: list[tuple[time, str, re.Match[str]]] = []
    for match in _CLOCK.finditer(text):
        at = _clock_time(match)
        bare = match.group("prefix") is None and match.group("suffix") is None
        if at is not None and not (bare and _DURATION_AFTER.match(text, match.end())):
            found.append((at, _kind(match.group("prefix"), text), match))
    if not found:
        return None
    index = next((i for i, clock in enumerate(found) if clock[1] != "before"), 0)
    at, kind, match = found[index]
    # "de 9h à 12h", "entre 14h et 16h", "14h-16h": from the start until the end.
    after = found[index + 1] if index + 1 < len(found) else None
    if after and after[0] > at and _RANGE_GAP.fullmatch(text, match.end(), after[2].start()):
        return at, "after", after[0]
    return at, kind, None


def _clock_time(match: re.Match[str]) -> time | None:
    if match.group("noon"):
        return time(12, 30 if match.group("half") else 0)
    hour = int(match.group("hour") or match.group("chour"))
    minute = int(match.group("minute") or match.group("colon") or 0)
    suffix = match.group("suffix") or ""
    if match.group("colon") is None and 1 <= hour <= 6 and suffix not in ("du matin", "de la nuit"):
        hour += 12  # "à 3h" is 15:00: a centre does not call at 3 in the night
    elif suffix in ("du soir", "de l aprem") and hour < 12:
        hour += 12
    if hour > 23 or minute > 59:
        return None
    return time(hour, minute)


def _kind(prefix: str | None, text: str) -> str:
    # "je travaille jusqu'à 17h": busy until then, so free from 17:00.
    if prefix in _AFTER or (prefix in ("jusqu a", "jusqua") and _BUSY.search(text)):
        return "after"
    return "before" if prefix in _BEFORE else "at"


def _at_clock(clock: _Clock, day: date | None, now: datetime) -> datetime:
    at, kind, until = clock
    if kind == "before":
        # As early as possible before the bound: now, or the next morning.
        if day is None or day == now.date():
            if now.time() < at:
                return now
            day = now.date() + timedelta(days=1)
        start = _DEFAULT_HOUR if at > _DEFAULT_HOUR else time(max(at.hour - 1, 0))
        return datetime.combine(day, start, now.tzinfo)
    if day is not None:
        return datetime.combine(day, at, now.tzinfo)
    today = datetime.combine(now.date(), at, now.tzinfo)
    if today >= now:
        return today
    # Already past: a lower bound or an open range is met now; a named hour is tomorrow's.
    if kind == "after" and (until is None or now.time() < until):
        return now
    return today + timedelta(days=1)


def _at_period(start: time, end: time, day: date | None, now: datetime) -> datetime:
    if day is not None and day != now.date():
        return datetime.combine(day, start, now.tzinfo)
    if now.time() < end:
        return max(now, datetime.combine(now.date(), start, now.tzinfo))
    return datetime.combine(now.date() + timedelta(days=1), start, now.tzinfo)

"""The send window and opening-hours due times, on fixed clocks (no real now, no sleep)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from campaigns.rules.business_hours import due_at, open_time_between
from campaigns.rules.send_window import (
    DEFAULT_SEND_WINDOW,
    parse_holidays,
    parse_send_window,
)

PARIS = ZoneInfo("Europe/Paris")
REUNION = ZoneInfo("Indian/Reunion")


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)


DEFAULT = parse_send_window(DEFAULT_SEND_WINDOW)
ALSACE = parse_send_window(DEFAULT_SEND_WINDOW, holidays_spec="alsace-moselle")


# --- is_open / next_open with the default window (mon-sat 09:00-19:00, FR holidays) ----

# (what the row shows, instant, open?, next opening)
DEFAULT_CASES = [
    ("Saturday 18:59 is open", paris(2025, 2, 8, 18, 59), True, paris(2025, 2, 8, 18, 59)),
    ("Saturday 19:00 is closed", paris(2025, 2, 8, 19, 0), False, paris(2025, 2, 10, 9, 0)),
    ("Sunday noon is closed", paris(2025, 2, 9, 12, 0), False, paris(2025, 2, 10, 9, 0)),
    ("Monday 08:59:59 is closed", paris(2025, 2, 10, 8, 59, 59), False, paris(2025, 2, 10, 9)),
    ("Monday 09:00 opens", paris(2025, 2, 10, 9, 0), True, paris(2025, 2, 10, 9, 0)),
    ("Friday 22:00 waits till Saturday", paris(2025, 2, 14, 22), False, paris(2025, 2, 15, 9)),
    ("14 July (a Monday)", paris(2025, 7, 14, 10, 0), False, paris(2025, 7, 15, 9, 0)),
    ("1 May (a Thursday)", paris(2025, 5, 1, 10, 0), False, paris(2025, 5, 2, 9, 0)),
    ("Christmas", paris(2025, 12, 25, 10, 0), False, paris(2025, 12, 26, 9, 0)),
    ("Good Friday is open outside Alsace-Moselle", paris(2025, 4, 18, 10), True, None),
    ("Easter Monday", paris(2025, 4, 21, 10, 0), False, paris(2025, 4, 22, 9, 0)),
    ("Sat then Sun then Easter Monday", paris(2025, 4, 19, 20), False, paris(2025, 4, 22, 9)),
    # Daylight saving: last Sunday of March (02:00 -> 03:00) and of October (03:00 -> 02:00).
    ("before spring forward", paris(2025, 3, 29, 19, 0), False, paris(2025, 3, 31, 9, 0)),
    ("before fall back", paris(2025, 10, 25, 19, 0), False, paris(2025, 10, 27, 9, 0)),
    ("an instant given in UTC", datetime(2025, 2, 10, 7, 59, tzinfo=UTC), False, None),
    ("the same in UTC, open", datetime(2025, 2, 10, 8, 0, tzinfo=UTC), True, None),
]


@pytest.mark.parametrize(
    ("at", "is_open", "next_open"),
    [case[1:] for case in DEFAULT_CASES],
    ids=[case[0] for case in DEFAULT_CASES],
)
def test_default_window(at: datetime, is_open: bool, next_open: datetime | None) -> None:
    """The default window opens Monday to Saturday 09:00-19:00 in Paris, not on holidays."""
    assert DEFAULT.is_open(at) is is_open
    expected = at if next_open is None and is_open else next_open
    if expected is not None:
        found = DEFAULT.next_open(at)
        assert found == expected
        assert found.tzinfo == PARIS
        assert DEFAULT.is_open(found)


def test_dst_openings_are_nine_local_not_shifted() -> None:
    """Across a DST change the next opening is 09:00 on the wall clock (UTC moves)."""
    spring = DEFAULT.next_open(paris(2025, 3, 29, 19, 0))
    autumn = DEFAULT.next_open(paris(2025, 10, 25, 19, 0))
    assert spring.astimezone(UTC) == datetime(2025, 3, 31, 7, 0, tzinfo=UTC)
    assert autumn.astimezone(UTC) == datetime(2025, 10, 27, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize("spec", ["FR-57", "FR-67", "FR-68", "alsace-moselle", "Moselle"])
def test_alsace_moselle_closes_on_good_friday_and_26_december(spec: str) -> None:
    """Alsace-Moselle adds Good Friday and Saint-Étienne (26 December) to the French list."""
    window = parse_send_window(DEFAULT_SEND_WINDOW, holidays_spec=spec)
    assert not window.is_open(paris(2025, 4, 18, 10, 0))
    assert not window.is_open(paris(2025, 12, 26, 10, 0))
    # Christmas Thursday, Saint-Étienne Friday: the next opening is Saturday.
    assert window.next_open(paris(2025, 12, 24, 19, 0)) == paris(2025, 12, 27, 9, 0)
    assert DEFAULT.is_open(paris(2025, 12, 26, 10, 0))


# (holidays spec, time zone, a local Monday-Saturday that is a holiday there only)
OVERSEAS = [
    ("FR-971", "America/Guadeloupe", date(2025, 5, 27)),
    ("FR-972", "America/Martinique", date(2025, 5, 22)),
    ("FR-973", "America/Cayenne", date(2025, 6, 10)),
    ("FR-974", "Indian/Reunion", date(2025, 12, 20)),
    ("RE", "Indian/Reunion", date(2025, 12, 20)),
    ("FR-976", "Indian/Mayotte", date(2026, 4, 27)),
]


@pytest.mark.parametrize(("holidays_spec", "tz", "day"), OVERSEAS)
def test_overseas_abolition_of_slavery_days(holidays_spec: str, tz: str, day: date) -> None:
    """Each overseas department closes on its own abolition-of-slavery day, in local time."""
    local = datetime.combine(day, time(10, 0), tzinfo=ZoneInfo(tz))
    window = parse_send_window(DEFAULT_SEND_WINDOW, tz=tz, holidays_spec=holidays_spec)
    metropolitan = parse_send_window(DEFAULT_SEND_WINDOW, tz=tz, holidays_spec="FR")
    assert window.is_holiday(day)
    assert not window.is_open(local)
    assert metropolitan.is_open(local)


def test_reunion_uses_its_own_clock() -> None:
    """At 15:30 UTC it is 16:30 in Paris (open) but 19:30 in Réunion (closed)."""
    reunion = parse_send_window(DEFAULT_SEND_WINDOW, tz="Indian/Reunion", holidays_spec="FR-974")
    instant = datetime(2025, 12, 19, 15, 30, tzinfo=UTC)
    assert DEFAULT.is_open(instant)
    assert not reunion.is_open(instant)
    # Friday evening, then the 20 December holiday (a Saturday), then Sunday.
    assert reunion.next_open(instant) == datetime(2025, 12, 22, 9, 0, tzinfo=REUNION)
    assert reunion.next_open(instant).astimezone(UTC) == datetime(2025, 12, 22, 5, tzinfo=UTC)


def test_always_is_open_even_on_holidays() -> None:
    """``always`` lifts the window and the holidays: open at 03:00 on Christmas."""
    window = parse_send_window("always")
    christmas_night = paris(2025, 12, 25, 3, 0)
    assert window.always
    assert window.is_open(christmas_night)
    assert window.next_open(christmas_night) == christmas_night
    assert window.closes_at(christmas_night) is None


def test_closes_at() -> None:
    """closes_at gives the end of the current period, None when closed."""
    assert DEFAULT.closes_at(paris(2025, 2, 8, 10, 0)) == paris(2025, 2, 8, 19, 0)
    assert DEFAULT.closes_at(paris(2025, 2, 8, 19, 0)) is None
    split = parse_send_window("mon-fri 09:00-12:00,14:00-18:00")
    assert split.closes_at(paris(2025, 2, 11, 10, 0)) == paris(2025, 2, 11, 12, 0)
    assert not split.is_open(paris(2025, 2, 11, 12, 30))
    assert split.next_open(paris(2025, 2, 11, 12, 30)) == paris(2025, 2, 11, 14, 0)
    # Touching periods across midnight are one: open all week, it closes on the holiday.
    nonstop = parse_send_window("mon-sun 00:00-24:00")
    assert nonstop.closes_at(paris(2025, 12, 22, 10, 0)) == paris(2025, 12, 25, 0, 0)


def test_next_open_across_a_multi_day_gap() -> None:
    """A one-hour weekly window, just missed, opens again seven days later."""
    weekly = parse_send_window("mon 09:00-10:00", holidays_spec="none")
    assert weekly.next_open(paris(2025, 2, 10, 10, 0)) == paris(2025, 2, 17, 9, 0)
    # Easter Monday with French holidays pushes it one more week.
    french = parse_send_window("mon 09:00-10:00")
    assert french.next_open(paris(2025, 4, 14, 10, 0)) == paris(2025, 4, 28, 9, 0)


# (spec, equivalent canonical spec)
EQUIVALENT_SPECS = [
    ("lun-sam 09:00-19:00", "mon-sat 09:00-19:00"),
    ("LUN-SAM 9h-19h", "mon-sat 09:00-19:00"),
    ("Monday-Friday 09h00-17h00", "mon-fri 09:00-17:00"),
    ("mon,wed,fri 09:00-19:00", "mon 09:00-19:00; wed 09:00-19:00; fri 09:00-19:00"),
    ("sat-mon 10:00-12:00", "mon,sat,sun 10:00-12:00"),
    ("mon-sun 09:00-12:00,11:00-13:00", "mon-sun 09:00-13:00"),
    ("mon-sun 09:00-12:00,12:00-13:00", "mon-sun 09:00-13:00"),
    ("lun-ven 09:00-19:00 ; sam 09:00-12:00", "mon-fri 09:00-19:00;sat 09:00-12:00"),
    ("mon, sat 09:00 - 19:00", "mon,sat 09:00-19:00"),
]


@pytest.mark.parametrize(("spec", "canonical"), EQUIVALENT_SPECS)
def test_spec_grammar(spec: str, canonical: str) -> None:
    """French and English day names, 9h/09h00/09:00 times, lists, wrapping ranges."""
    assert parse_send_window(spec).weekly == parse_send_window(canonical).weekly


def test_window_fields() -> None:
    """The parsed window exposes days, start, end, zone and calendar."""
    assert DEFAULT.days == frozenset(range(6))
    assert (DEFAULT.start, DEFAULT.end) == (time(9), time(19))
    assert DEFAULT.tz == PARIS
    assert DEFAULT.holidays is not None
    assert parse_send_window("mon 09:00-10:00", holidays_spec="none").holidays is None
    assert parse_send_window("mon-sat 09:00-19:00") == DEFAULT
    saturday_mornings = parse_send_window("mon-fri 09:00-19:00; sat 09:00-12:00")
    assert saturday_mornings.weekly[5] == ((time(9), time(12)),)
    assert hash(DEFAULT) == hash(parse_send_window("mon-sat 09:00-19:00"))


BAD_WINDOWS = [
    ("", "vide"),
    ("mon-sat", "attendu"),
    ("mon-sat 09:00", "plage horaire"),
    ("mon-sat 19:00-09:00", "début"),
    ("mon-sat 09:00-09:00", "début"),
    ("funday 09:00-19:00", "jour inconnu"),
    ("mon-sat 25:00-26:00", "heure invalide"),
    ("mon-sat 09:60-19:00", "heure invalide"),
    ("mon-sat 24:00-19:00", "heure invalide"),
    ("mon-sat 09:00-19:00,", "plage horaire"),
    ("mon-sat 09:00-19:00;", "attendu"),
    ("never", "attendu"),
]


@pytest.mark.parametrize(("spec", "message"), BAD_WINDOWS)
def test_malformed_window_is_a_value_error(spec: str, message: str) -> None:
    """A bad spec raises ValueError saying what is expected."""
    with pytest.raises(ValueError, match=message):
        parse_send_window(spec)


def test_bad_holidays_and_timezone() -> None:
    """Unknown calendars and zones are ValueErrors naming the expected values."""
    with pytest.raises(ValueError, match="FR-974"):
        parse_holidays("FR-99")
    with pytest.raises(ValueError, match="Europe/Paris"):
        parse_send_window(DEFAULT_SEND_WINDOW, tz="Europe/Nowhere")
    with pytest.raises(ValueError, match="aware"):
        DEFAULT.is_open(datetime(2025, 2, 10, 10, 0))


def test_holiday_names_are_french() -> None:
    """The calendar speaks French, for anything shown to a CCAS user."""
    calendar = parse_holidays("FR")
    assert calendar is not None
    assert calendar.get(date(2025, 7, 14)) == "Fête nationale"


# --- due times in opening hours ---------------------------------------------------------

CCAS = parse_send_window("mon-fri 09:00-17:00")
CCAS_MOSELLE = parse_send_window("mon-fri 09:00-17:00", holidays_spec="FR-57")
NONSTOP = parse_send_window("mon-sun 00:00-24:00", holidays_spec="none")
ALWAYS = parse_send_window("always")

# (what the row shows, window, start, hours, due)
DUE_CASES = [
    ("24 h = three working days", CCAS, paris(2025, 2, 10, 9), 24, paris(2025, 2, 12, 17)),
    ("ends on a closing time", CCAS, paris(2025, 2, 10, 9), 8, paris(2025, 2, 10, 17)),
    ("Friday to Wednesday", CCAS, paris(2025, 2, 14, 16), 24, paris(2025, 2, 19, 16)),
    ("starts at the next opening", CCAS, paris(2025, 2, 15, 10), 2, paris(2025, 2, 17, 11)),
    ("zero hours, closed", CCAS, paris(2025, 2, 15, 10), 0, paris(2025, 2, 17, 9)),
    ("half an hour overnight", CCAS, paris(2025, 2, 10, 16, 45), 0.5, paris(2025, 2, 11, 9, 15)),
    ("skips 1 May", CCAS, paris(2025, 4, 30, 16), 2, paris(2025, 5, 2, 10)),
    ("skips Christmas", CCAS, paris(2025, 12, 23, 10), 16, paris(2025, 12, 26, 10)),
    ("and 26 Dec in Moselle", CCAS_MOSELLE, paris(2025, 12, 23, 10), 16, paris(2025, 12, 29, 10)),
    ("plain time, no window", None, paris(2025, 2, 15, 10), 24, paris(2025, 2, 16, 10)),
    # Real elapsed time across the spring change: 24 h later reads 13:00 on the clock.
    ("DST, no window", None, paris(2025, 3, 29, 12), 24, paris(2025, 3, 30, 13)),
    ("DST, open all day", NONSTOP, paris(2025, 3, 29, 12), 24, paris(2025, 3, 30, 13)),
    ("DST, always", ALWAYS, paris(2025, 3, 29, 12), 24, paris(2025, 3, 30, 13)),
]


@pytest.mark.parametrize(
    ("window", "start", "hours", "due"),
    [case[1:] for case in DUE_CASES],
    ids=[case[0] for case in DUE_CASES],
)
def test_due_at(window, start: datetime, hours: float, due: datetime) -> None:
    """SLA due times count only open time when a window is given."""
    assert due_at(start, hours, window=window) == due
    if window is not None and hours:
        assert open_time_between(start, due, window=window) == timedelta(hours=hours)


def test_open_time_counts_the_short_spring_night() -> None:
    """Sunday 01:00-04:00 on the spring-forward night lasts two real hours."""
    night = parse_send_window("sun 01:00-04:00", holidays_spec="none")
    spent = open_time_between(paris(2025, 3, 30, 0), paris(2025, 3, 30, 5), window=night)
    assert spent == timedelta(hours=2)
    assert due_at(paris(2025, 3, 30, 0), 2, window=night) == paris(2025, 3, 30, 4)


def test_due_at_rejects_bad_input() -> None:
    """Naive datetimes and negative durations are errors."""
    with pytest.raises(ValueError):
        due_at(datetime(2025, 2, 10, 9), 1, window=CCAS)
    with pytest.raises(ValueError):
        due_at(paris(2025, 2, 10, 9), -1, window=CCAS)

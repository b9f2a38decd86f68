"""requested_callback: the callback time a person names in a French SMS reply.

The cases were written from the way people answer an SMS, before the parser. Unless a
case says otherwise, "now" is Tuesday 1 December 2026, 10:30 in Paris.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from campaigns.rules.callback_time import requested_callback
from campaigns.rules.send_window import parse_send_window

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 12, 1, 10, 30, tzinfo=PARIS)  # a Tuesday
WINDOW = parse_send_window("mon-sat 09:00-19:00", "Europe/Paris", "FR")


def paris(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=PARIS)


# --- Clock times, no window: interpreted in now's zone ----------------------------------

CLOCK_CASES = [
    ("rappelez-moi après 14h", "2026-12-01 14:00"),
    ("apres 14 h", "2026-12-01 14:00"),
    ("Rappelez moi APRES 14H svp", "2026-12-01 14:00"),
    ("à partir de 15h30", "2026-12-01 15:30"),
    ("a partir de 15h30", "2026-12-01 15:30"),
    ("vers 11h", "2026-12-01 11:00"),
    ("vers 10h", "2026-12-02 10:00"),  # 10:00 has passed: tomorrow
    ("à 9h", "2026-12-02 09:00"),
    ("14h30", "2026-12-01 14:30"),
    ("14H30", "2026-12-01 14:30"),
    ("15:00", "2026-12-01 15:00"),
    ("15h", "2026-12-01 15:00"),
    ("16 heures", "2026-12-01 16:00"),
    ("à 17 heures 30", "2026-12-01 17:30"),
    ("Apres 17h30 je suis dispo", "2026-12-01 17:30"),
    ("pas avant midi", "2026-12-01 12:00"),
    ("midi", "2026-12-01 12:00"),
    ("à midi", "2026-12-01 12:00"),
    ("entre 14h et 16h", "2026-12-01 14:00"),
    ("de 14h à 16h", "2026-12-01 14:00"),
    ("14h-16h", "2026-12-01 14:00"),
    ("de 9h à 12h", "2026-12-01 10:30"),  # a range under way: now
    ("entre 8h et 10h", "2026-12-02 08:00"),  # a range over for today: tomorrow
    ("Appeler moi vers 14h 14h30", "2026-12-01 14:00"),
    ("jsuis au taf jusqua 18h", "2026-12-01 18:00"),
    ("à 3h", "2026-12-01 15:00"),  # nobody asks for a call at 3 in the night
    ("à 3h de l'après-midi", "2026-12-01 15:00"),
    ("8h du soir", "2026-12-01 20:00"),
    ("après 9h", "2026-12-01 10:30"),  # a lower bound already passed: now
    ("avant midi", "2026-12-01 10:30"),
    ("je travaille jusqu'à 17h", "2026-12-01 17:00"),
    ("aujourd'hui à 16h", "2026-12-01 16:00"),
]

# --- Parts of the day and days -----------------------------------------------------------

DAY_CASES = [
    ("rappelez moi demain", "2026-12-02 09:00"),
    ("demain matin", "2026-12-02 09:00"),
    ("demain après-midi", "2026-12-02 14:00"),
    ("demain apres midi", "2026-12-02 14:00"),
    ("demain aprem", "2026-12-02 14:00"),
    ("cet après-midi", "2026-12-01 14:00"),
    ("cet aprem", "2026-12-01 14:00"),
    ("ce soir", "2026-12-01 18:00"),
    ("plutôt le soir", "2026-12-01 18:00"),
    ("en soirée", "2026-12-01 18:00"),
    ("dans la soirée", "2026-12-01 18:00"),
    ("en fin de matinée", "2026-12-01 11:00"),
    ("ce matin", "2026-12-01 10:30"),  # the morning is under way: now
    ("en fin d'après-midi", "2026-12-01 17:00"),
    ("en début d'après-midi", "2026-12-01 14:00"),
    ("demain en fin de matinée", "2026-12-02 11:00"),
    ("demain midi", "2026-12-02 12:00"),
    ("RAPPELEZ MOI DEMAIN A 11H", "2026-12-02 11:00"),
    ("demain vers 15h", "2026-12-02 15:00"),
    ("rappel demain 9h svp", "2026-12-02 09:00"),
    ("demain avant 10h", "2026-12-02 09:00"),
    ("après-demain", "2026-12-03 09:00"),
    ("lundi", "2026-12-07 09:00"),
    ("lundi matin", "2026-12-07 09:00"),
    ("rappelez-moi lundi prochain", "2026-12-07 09:00"),
    ("jeudi après 16h", "2026-12-03 16:00"),
    ("mardi après 16h", "2026-12-08 16:00"),  # today's weekday named: next week
    ("mardi prochain", "2026-12-08 09:00"),
    ("Mercredi 14h", "2026-12-02 14:00"),
    ("mercredi a 9h30", "2026-12-02 09:30"),
    ("jeudi en fin de matinée", "2026-12-03 11:00"),
    ("vendredi 10h", "2026-12-04 10:00"),
    ("samedi matin", "2026-12-05 09:00"),
    ("ce week-end", "2026-12-05 09:00"),
    ("la semaine prochaine", "2026-12-07 09:00"),
    ("la semaine pro", "2026-12-07 09:00"),
    ("rappelez moi en fin de semaine", "2026-12-04 09:00"),
    ("le 8 à 14h", "2026-12-08 14:00"),
    ("pas le matin", "2026-12-01 14:00"),
    ("pas aujourd'hui", "2026-12-02 09:00"),
]

# --- Relative times and dates ---------------------------------------------------------

RELATIVE_CASES = [
    ("dans une heure", "2026-12-01 11:30"),
    ("dans 2 heures", "2026-12-01 12:30"),
    ("dans 2h", "2026-12-01 12:30"),
    ("dans 30 minutes", "2026-12-01 11:00"),
    ("dans une demi-heure", "2026-12-01 11:00"),
    ("dans 1h30", "2026-12-01 12:00"),
    ("dans un quart d'heure", "2026-12-01 10:45"),
    ("dans 2 jours", "2026-12-03 09:00"),
    ("dans deux heures", "2026-12-01 12:30"),
    ("dans deux jours", "2026-12-03 09:00"),
    ("dans l'heure", "2026-12-01 10:30"),
    ("maintenant", "2026-12-01 10:30"),
    ("tout de suite", "2026-12-01 10:30"),
    ("le 3 décembre", "2026-12-03 09:00"),
    ("le 3 decembre à 15h", "2026-12-03 15:00"),
    ("le 3/12", "2026-12-03 09:00"),
    ("le 3/12 à 10h", "2026-12-03 10:00"),
    ("le 15 janvier", "2027-01-15 09:00"),  # a date already past this year: next year
]

# --- Numbers that are not times, and texts naming no time -------------------------------

NO_TIME_CASES = [
    "plus tard",  # too vague to plan: the caller's own retry delay applies
    "tout à l'heure",
    "dès que possible",
    "rappelez-moi",
    "oui",
    "merci beaucoup",
    "je suis occupé",
    "mon numéro c'est le 06 12 34 56 78",
    "appelez le 0612345678",
    "+33 6 12 34 56 78",
    "je suis au 06.12.34.56.78",
    "j'ai 3 enfants",
    "j'ai 14 ans de retard",
    "mon fils a 15 ans",
    "j'ai 82 ans",
    "50 euros",
    "il me reste 50€",
    "ma facture de 140,50 euros",
    "RSA 600 euros par mois",
    "j'habite au 12 rue des Lilas",
    "bâtiment 4, 2ème étage",
    "code porte 1456",
    "j'ai 2 rdv médicaux",
    "j'ai marché pendant 2 heures",
    "je suis là depuis 8h",
    "il fait 3 degrés",
    "tous les jours sauf le mercredi",
    "le 3/12/1999",  # a date long past
]

MIXED_CASES = [
    ("mon numéro 06 12 34 56 78, rappelez après 14h", "2026-12-01 14:00"),
    ("j'ai 3 enfants, appelez demain matin", "2026-12-02 09:00"),
    ("je dois 50 euros, vous pouvez appeler à 16h", "2026-12-01 16:00"),
    ("j'ai 14 ans de retard, rappelez jeudi", "2026-12-03 09:00"),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    CLOCK_CASES + DAY_CASES + RELATIVE_CASES + MIXED_CASES,
    ids=lambda value: str(value),
)
def test_named_time_without_window(text: str, expected: str) -> None:
    assert requested_callback(text, NOW, None) == paris(expected)


@pytest.mark.parametrize("text", NO_TIME_CASES)
def test_no_time_named(text: str) -> None:
    assert requested_callback(text, NOW, None) is None
    assert requested_callback(text, NOW, WINDOW) is None


# --- With the window mon-sat 09:00-19:00 and French holidays -----------------------------

WINDOW_CASES = [
    ("dimanche", "2026-12-07 09:00"),
    ("dimanche matin", "2026-12-07 09:00"),
    ("dimanche 15h", "2026-12-07 09:00"),
    ("à 21h", "2026-12-02 09:00"),
    ("ce soir 20h", "2026-12-02 09:00"),
    ("à 8h", "2026-12-02 09:00"),
    ("le 25 décembre", "2026-12-26 09:00"),  # Christmas, a Friday: Saturday opens
    ("le 25/12 à 14h", "2026-12-26 09:00"),
    ("le 1er janvier", "2027-01-02 09:00"),
    ("samedi 18h", "2026-12-05 18:00"),
    ("samedi 19h30", "2026-12-07 09:00"),
    ("après 14h", "2026-12-01 14:00"),
    ("ce soir", "2026-12-01 18:00"),
    ("demain matin", "2026-12-02 09:00"),
    ("dans 2 heures", "2026-12-01 12:30"),
]


@pytest.mark.parametrize(("text", "expected"), WINDOW_CASES, ids=lambda value: str(value))
def test_outside_window_moves_to_next_opening(text: str, expected: str) -> None:
    got = requested_callback(text, NOW, WINDOW)
    assert got == paris(expected)
    assert got is not None and WINDOW.is_open(got)
    assert got.tzinfo == WINDOW.tz


# --- Other moments of the week ------------------------------------------------------------

OTHER_NOW_CASES = [
    ("2026-12-01 11:00", False, "à 9h", "2026-12-02 09:00"),
    ("2026-12-01 15:00", False, "cet après-midi", "2026-12-01 15:00"),
    ("2026-12-01 13:00", False, "en fin de matinée", "2026-12-02 11:00"),  # over today
    ("2026-12-01 23:00", False, "ce soir", "2026-12-02 18:00"),
    ("2026-12-01 20:00", False, "demain", "2026-12-02 09:00"),
    ("2026-12-01 20:00", True, "ce soir", "2026-12-02 09:00"),
    ("2026-12-05 10:00", True, "lundi", "2026-12-07 09:00"),
    ("2026-12-05 10:00", True, "demain", "2026-12-07 09:00"),  # Sunday: Monday
    ("2026-12-06 16:00", True, "maintenant", "2026-12-07 09:00"),
    ("2026-12-31 10:00", True, "demain", "2027-01-02 09:00"),  # New Year's Day
    ("2026-12-31 10:00", False, "le 3 janvier", "2027-01-03 09:00"),
]


@pytest.mark.parametrize(("now", "use_window", "text", "expected"), OTHER_NOW_CASES)
def test_other_moments(now: str, use_window: bool, text: str, expected: str) -> None:
    window = WINDOW if use_window else None
    assert requested_callback(text, paris(now), window) == paris(expected)


# --- Time zones -----------------------------------------------------------------------------


def test_without_window_times_are_read_in_nows_zone() -> None:
    now = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    assert requested_callback("après 14h", now, None) == datetime(2026, 12, 1, 14, tzinfo=UTC)


def test_with_window_times_are_read_in_the_windows_zone() -> None:
    reunion = parse_send_window("mon-sat 09:00-19:00", "Indian/Reunion", "FR-974")
    now = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)  # 13:30 in La Réunion
    got = requested_callback("à 15h", now, reunion)
    assert got == datetime(2026, 12, 1, 15, tzinfo=ZoneInfo("Indian/Reunion"))
    assert got is not None and got.tzinfo == reunion.tz


def test_relative_delay_keeps_nows_instant() -> None:
    now = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    got = requested_callback("dans une heure", now, WINDOW)
    assert got == datetime(2026, 12, 1, 10, 30, tzinfo=UTC)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError):
        requested_callback("à 15h", datetime(2026, 12, 1, 10, 30), None)

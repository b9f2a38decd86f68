"""A campaign waiting for its send window says so, and until when, in French."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from campaigns.campaign.progress import waiting_reason
from campaigns.core.settings import Settings
from campaigns.rules.send_window import closed_notice, french_moment, parse_send_window

PARIS = ZoneInfo("Europe/Paris")
# Sunday 29 November 2026, 20:00 in Paris.
SUNDAY_EVENING = datetime(2026, 11, 29, 19, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (datetime(2026, 11, 29, 21, 30, tzinfo=PARIS), "aujourd'hui à 21:30"),
        (datetime(2026, 11, 30, 9, 0, tzinfo=PARIS), "demain à 09:00"),
        (datetime(2026, 12, 2, 9, 0, tzinfo=PARIS), "mercredi à 09:00"),
        (datetime(2026, 12, 14, 9, 0, tzinfo=PARIS), "lundi 14 décembre à 09:00"),
    ],
)
def test_french_moment(at: datetime, expected: str) -> None:
    assert french_moment(at, SUNDAY_EVENING.astimezone(PARIS)) == expected


def test_closed_on_sunday_evening_until_monday_morning() -> None:
    window = parse_send_window("mon-sat 09:00-19:00", "Europe/Paris", "FR")
    assert closed_notice(window, SUNDAY_EVENING) == (
        "fenêtre d'envoi fermée : envoi à partir de demain à 09:00"
    )
    assert closed_notice(window, datetime(2026, 11, 30, 10, 0, tzinfo=UTC)) is None


def test_a_holiday_moves_the_opening() -> None:
    window = parse_send_window("mon-sat 09:00-19:00", "Europe/Paris", "FR")
    # Thursday 24 December, 20:00: Christmas is closed, Saturday 26th opens.
    notice = closed_notice(window, datetime(2026, 12, 24, 19, 0, tzinfo=UTC))
    assert notice == "fenêtre d'envoi fermée : envoi à partir de samedi à 09:00"


def _stats(status: str, queued: int) -> dict[str, object]:
    return {"status": status, "counts": {"queued": queued, "sending": 0}, "send_window": None}


def test_only_a_running_campaign_with_messages_left_waits() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert waiting_reason(_stats("running", 12), settings, SUNDAY_EVENING) == (
        "fenêtre d'envoi fermée : envoi à partir de demain à 09:00"
    )
    assert waiting_reason(_stats("running", 0), settings, SUNDAY_EVENING) is None
    assert waiting_reason(_stats("paused", 12), settings, SUNDAY_EVENING) is None
    always = Settings(CAMPAIGNS_SEND_WINDOW="always", _env_file=None)  # type: ignore[call-arg]
    assert waiting_reason(_stats("running", 12), always, SUNDAY_EVENING) is None

"""The campaign renderer's shortcuts give the template engine's own output.

Two shortcuts make a launch of a million affordable: the rendered SMS is kept by the
person fields the template reads, and a template of text and variables only is rendered
by formatting. Both are compared here with the engine itself on random people.
"""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import pytest

from campaigns.core.settings import Settings
from campaigns.messages.renderer import CampaignRenderer, person_fields_read
from campaigns.messages.rendering import TemplateError

ALL = ("civility", "first_name", "last_name")

READS = [
    ("Bonjour {{ person.civility }} {{ person.last_name }}", ("civility", "last_name")),
    ("{{ ccas.name }} {{ campaign.name }}", ()),
    ("{{ person['first_name'] }}", ("first_name",)),
    ("{{ person.last_name[4] }}{{ person.last_name|upper }}", ("last_name",)),
    ("{% if person.civility %}{{ person.civility }}{% endif %}", ("civility",)),
    # Whole-object uses: the output may depend on anything.
    ("{{ person }}", ALL),
    ("{% for x in [person] %}{{ x.first_name }}{% endfor %}", ALL),
    ("{% set person = ccas %}{{ person.name }}", ALL),
    ("{{ person.surnom }}", ALL),
    ("{{ person.", ALL),  # does not parse: rendering will say why
]


@pytest.mark.parametrize(("source", "fields"), READS)
def test_fields_read(source: str, fields: tuple[str, ...]) -> None:
    assert person_fields_read(source) == fields


# fmt: off
NAMES = ["Jeanne", "", None, "Zoé", "François", "Lou 🌸", "  Ève\t", "50 %", "%s", "Li",
         "Anne\r\nMarie", "Œdipe", "STOP au 36179", "x" * 200]
# fmt: on
CIVILITIES = ["Madame", "Monsieur", "", None]

# fmt: off
TEMPLATES = [
    # (body, fold, optout mention, formatted without the engine)
    ("{{ ccas.name }} : Bonjour {{ person.civility }} {{ person.last_name }}, appelez le "
     "{{ ccas.hotline }}, {{ ccas.hours }}.", False, None, True),
    ("Bonjour {{ person.first_name }} {{- person.last_name }} {# note #}à 100 %\n", False,
     "STOP au 36179", True),
    ("{{ person.first_name }}", False, None, True),  # empty for some: an error
    ("Une fête « {{ person.first_name }} » — {{ campaign.name }}…", True, None, True),
    ("{{ person.first_name|upper }} {{ person.last_name[1:] }}", True, "STOP", False),
    ("Bonjour {{ person.last_name[4] }}", False, None, False),  # index errors
    ("{% if person.civility %}{{ person.civility }}{% else %}Bonjour{% endif %} !", False,
     None, False),
]
# fmt: on


def _renderer(body: str, fold: bool, mention: str | None) -> CampaignRenderer:
    settings = Settings(
        CAMPAIGNS_SECRET_KEY="k" * 32,
        CAMPAIGNS_SMS_OPTOUT_MENTION=mention,
        _env_file=None,  # type: ignore[call-arg]
    )
    campaign: Any = SimpleNamespace(channel="sms", hotline="01 23 45 67 89", name="Été 100 %")
    version: Any = SimpleNamespace(body=body, fold_accents=fold, subject=None, body_html=None)
    return CampaignRenderer(campaign, version, settings, columns=ALL)


def _outcome(renderer: CampaignRenderer, row: tuple[Any, ...]) -> Any:
    try:
        return renderer.sms(row)
    except TemplateError as exc:
        return ("error", exc.code, exc.message)


@pytest.mark.parametrize(("body", "fold", "mention", "formatted"), TEMPLATES)
def test_shortcuts_give_the_engine_output(
    body: str, fold: bool, mention: str | None, formatted: bool
) -> None:
    fast = _renderer(body, fold, mention)
    assert (fast._plain is not None) == formatted
    engine = _renderer(body, fold, mention)
    engine._plain = None
    rng = random.Random(3)
    for _ in range(600):
        row = (rng.choice(CIVILITIES), rng.choice(NAMES), rng.choice(NAMES))
        expected = _outcome(engine, row)
        engine._sms.clear()  # the reference renders every person afresh
        assert _outcome(fast, row) == expected, row
        assert _outcome(fast, row) == expected, row  # from the cache this time


def test_the_cache_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("campaigns.messages.renderer.CACHE_LIMIT", 10)
    renderer = _renderer("Bonjour {{ person.last_name }}", False, None)
    for i in range(100):
        assert renderer.sms(("Madame", "", f"Nom{i}"))[0] == f"Bonjour Nom{i}"
        assert len(renderer._sms) <= 10

"""A coordinator's template can never hold the server: time and size stay bounded."""

from __future__ import annotations

import time

import pytest

from campaigns.messages.rendering import (
    MAX_OUTPUT,
    TemplateError,
    TemplateVars,
    check_template,
    render_sms,
)
from campaigns.messages.rendering import sample_vars as vars_

ATTACKS = [
    # (template, why it is dangerous)
    ('{{ "%020000000d" % 1 }}', "printf-style formatting builds 20 MB"),
    ('{{ "%s" % person.first_name }}', "string formatting with %"),
    ("{{ '{:>999999999}'.format(1) }}", "str.format with a width"),
    ("{{ person.first_name | center(999999999) }}", "center filter width"),
    ("{{ person.first_name | indent(999999999) }}", "indent filter width"),
    ("{{ person.first_name | format(1) }}", "format filter"),
    ("{{ person.first_name | wordwrap(5) }}", "filter outside the list"),
    (
        "{% for a in person.first_name %}{% for b in person.first_name %}"
        "{% for c in person.first_name %}x{% endfor %}{% endfor %}{% endfor %}",
        "nested loops multiply",
    ),
    ("{% macro m(n) %}{{ m(n) }}{% endmacro %}{{ m(1) }}", "recursion"),
    ("{% include 'x' %}", "another template"),
    (
        "{% set a = person.first_name ~ person.first_name %}"
        + "{% set a = a ~ a %}" * 40
        + "{{ a }}",
        "text doubled by re-assignment",
    ),
    (
        "{{ person.first_name"
        + " | replace('e', 'eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee')" * 8
        + " }}",
        "chained replace grows the text",
    ),
    ("{{ ccas.name + ccas.name * 2 }}", "string repetition"),
]


@pytest.mark.parametrize(("body", "why"), ATTACKS, ids=[why for _, why in ATTACKS])
def test_attacks_are_refused_quickly(body: str, why: str) -> None:
    started = time.perf_counter()
    with pytest.raises(TemplateError) as refused:
        check_template(body)
        render_sms(body, sample_vars_(), optout_mention=None)
    assert refused.value.code in {"forbidden", "too_long"}, why
    assert time.perf_counter() - started < 1.0, why


def sample_vars_() -> TemplateVars:
    return vars_()


def test_output_is_capped() -> None:
    body = "{{ ccas.name }}" * (MAX_OUTPUT // 10)
    with pytest.raises(TemplateError) as refused:
        render_sms(body, sample_vars_(), optout_mention=None)
    assert refused.value.code == "too_long"
    assert "trop long" in refused.value.message


@pytest.mark.parametrize(
    "body",
    [
        "Bonjour {{ person.first_name | replace('e', 'é') }}",
        "{% for c in person.first_name %}{{ c }}{% endfor %}",
        "{{ 10 % 3 }} {{ 2 + 3 }} {{ ccas.name + ' ' + ccas.hotline }}",
    ],
)
def test_ordinary_templates_still_render(body: str) -> None:
    check_template(body)
    assert render_sms(body, sample_vars_(), optout_mention=None).text


async def test_previews_run_off_the_event_loop_with_a_time_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from campaigns.core.errors import Invalid
    from campaigns.core.settings import Settings
    from campaigns.messages import template_store as store

    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    content = store.TemplateContent("Bonjour {{ person.first_name }}")
    result = await store.preview_off_loop("sms", content, settings)
    assert result["text"].startswith("Bonjour Jeanne")

    def slow(*args: object, **kwargs: object) -> dict[str, object]:
        time.sleep(0.5)
        return {}

    monkeypatch.setattr(store, "preview", slow)
    started = time.perf_counter()
    with pytest.raises(Invalid) as refused:
        await store.preview_off_loop("sms", content, settings, limit=0.1)
    assert refused.value.code == "too_slow"
    assert time.perf_counter() - started < 0.4  # the loop was never held

"""Template rendering: the sandbox, variable checks, SMS and e-mail output, default templates."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from campaigns.messages.rendering import (
    ALLOWED_VARIABLES,
    CampaignVars,
    CcasVars,
    PersonVars,
    TemplateError,
    TemplateVars,
    check_template,
    load_default_templates,
    render_email,
    render_sms,
    sample_person,
    sample_vars,
)
from campaigns.rules.sms_encoding import GSM7, UCS2

OPTOUT = "STOP au 36179"
URL = "https://ccas.example.fr/desinscription/abc123?x=1&y=2"


def test_sample_person_is_plausible_and_complete() -> None:
    """The preview person has every variable filled in."""
    person = sample_person()
    assert person.civility in {"Madame", "Monsieur"}
    assert person.first_name and person.last_name
    assert set(ALLOWED_VARIABLES) == {"person", "ccas", "campaign"}
    assert ALLOWED_VARIABLES["person"] == ("civility", "first_name", "last_name")
    assert ALLOWED_VARIABLES["ccas"] == ("name", "hotline", "hours")
    assert ALLOWED_VARIABLES["campaign"] == ("name",)


# --- SMS ---------------------------------------------------------------------------------


def test_render_sms_with_every_variable() -> None:
    """Every documented variable renders; the opt-out mention goes on its own line."""
    body = (
        "{{ person.civility }} {{ person.first_name }} {{ person.last_name }} / "
        "{{ ccas.name }} / {{ ccas.hotline }} / {{ ccas.hours }} / {{ campaign.name }}"
    )
    variables = TemplateVars(
        PersonVars("Monsieur", "Jean", "Dupont"),
        CcasVars("CCAS de Limoges", "0 800 00 00 00", "du lundi au vendredi"),
        CampaignVars("Canicule"),
    )
    result = render_sms(body, variables, optout_mention=OPTOUT)
    assert result.text == (
        "Monsieur Jean Dupont / CCAS de Limoges / 0 800 00 00 00 / du lundi au vendredi / "
        "Canicule\nSTOP au 36179"
    )
    assert result.encoding == GSM7
    assert result.units == len(result.text)


def test_render_sms_accepts_a_mapping() -> None:
    """Callers may pass a plain mapping of the three namespaces."""
    context = sample_vars().as_context()
    assert render_sms("{{ person.first_name }}", context, optout_mention=None).text == "Jeanne"


SMS_TIDY = [
    # (body, person, opt-out mention, sent text)
    (
        "Bonjour {{ person.civility }} {{ person.last_name }} !",
        PersonVars("", "", "Diallo"),
        None,
        "Bonjour Diallo !",
    ),
    (
        "  Bonjour\r\n{{ person.first_name }}  \r\n\n",
        PersonVars("", "Ali", ""),
        None,
        "Bonjour\nAli",
    ),
    ("Bonjour {{ person.first_name }}", PersonVars(first_name=None), None, "Bonjour"),  # type: ignore[arg-type]
    ("Message.", sample_person(), OPTOUT, "Message.\nSTOP au 36179"),
    ("Message. STOP au 36179", sample_person(), OPTOUT, "Message. STOP au 36179"),
    ("Message.", sample_person(), "", "Message."),
    (
        "Appelez-nous au {{ ccas.hotline }}\u00a0!",
        sample_person(),
        None,
        "Appelez-nous au 0 800 12 34 56 !",
    ),
]


@pytest.mark.parametrize(("body", "person", "mention", "expected"), SMS_TIDY)
def test_render_sms_tidies_text(
    body: str, person: PersonVars, mention: str | None, expected: str
) -> None:
    """Doubled spaces (empty variables), CRLF and edges are tidied; the mention is not doubled."""
    result = render_sms(body, sample_vars(person=person), optout_mention=mention)
    assert result.text == expected


def test_mention_counts_in_the_length() -> None:
    """The opt-out mention is part of what is counted, and can add a segment."""
    body = "a" * 150
    assert render_sms(body, sample_vars(), optout_mention=None).segments == 1
    with_mention = render_sms(body, sample_vars(), optout_mention=OPTOUT)
    assert with_mention.units == 150 + 1 + len(OPTOUT)
    assert with_mention.segments == 2


def test_render_sms_fold_is_opt_in() -> None:
    """A name with ê stays UCS-2 unless the template asks for folding."""
    variables = sample_vars(person=PersonVars("Madame", "Gisèle", "Lefèvre-Benoît"))
    body = "Bonjour {{ person.first_name }} {{ person.last_name }}"
    plain = render_sms(body, variables, optout_mention=None)
    assert (plain.encoding, plain.ucs2_chars) == (UCS2, ("î",))
    folded = render_sms(body, variables, optout_mention=None, fold=True)
    assert (folded.text, folded.encoding, folded.folded) == (
        "Bonjour Gisèle Lefèvre-Benoit",
        GSM7,
        True,
    )


def test_no_html_escaping_in_sms() -> None:
    """SMS text is not HTML: an apostrophe or ampersand is sent as typed."""
    variables = sample_vars(ccas=CcasVars("CCAS d'Amiens & Co", "115", "24h/24"))
    assert render_sms("{{ ccas.name }}", variables, optout_mention=None).text == (
        "CCAS d'Amiens & Co"
    )


# --- template errors -----------------------------------------------------------------------

ERRORS = [
    # (body, code, line, words the French message must contain)
    ("Bonjour {{ person.first_name", "syntax", 1, ["syntaxe", "ligne 1"]),
    ("Bonjour\n{% if %}", "syntax", 2, ["syntaxe", "ligne 2"]),
    ("Bonjour {{ person.prenom }}", "undefined_variable", 1, ["person.prenom", "inconnue"]),
    ("Bonjour\n\n{{ ccas.telephone }}", "undefined_variable", 3, ["ccas.telephone", "ligne 3"]),
    ("{{ nom }}", "undefined_variable", 1, ["nom", "person.first_name"]),
    ("{{ person }}", "undefined_variable", 1, ["person"]),
    ("{{ range(10) }}", "undefined_variable", 1, ["range"]),
    ("{{ person.__class__ }}", "forbidden", 1, ["interdit"]),
    ("{{ person.first_name.__class__.__mro__ }}", "forbidden", 1, ["interdit"]),
    ("{{ person.first_name * 100000000 }}", "forbidden", 1, ["interdit"]),
    ("{{ 2 ** 100000000 }}", "forbidden", 1, ["interdit"]),
    ("{{ 1 / 0 }}", "render", 1, ["ligne 1"]),
    ("   {# rien #}  ", "empty", None, ["vide"]),
]


@pytest.mark.parametrize(("body", "code", "line", "words"), ERRORS)
def test_template_errors(body: str, code: str, line: int | None, words: list[str]) -> None:
    """Each problem is refused at check and render time with a code and a French message."""
    with pytest.raises(TemplateError) as checked:
        check_template(body)
    assert (checked.value.code, checked.value.line) == (code, line)
    for word in words:
        assert word in str(checked.value)
    with pytest.raises(TemplateError) as rendered:
        render_sms(body, sample_vars(), optout_mention=OPTOUT)
    assert rendered.value.code == code


VALID = [
    "Bonjour {{ person.first_name | upper }}",
    "{{ person['last_name'] }}",
    "{% if person.civility %}{{ person.civility }} {% endif %}{{ person.last_name }}",
    "{% set qui = person.first_name %}{{ qui }}",
    "{% for c in person.first_name %}{{ loop.index }}{{ c }}{% endfor %}",
    "{{ campaign.name | default('') }} {{ ccas.name | title }}",
    "{{ 3 * 2 }} {{ 1.5 * 2 }}",
]


@pytest.mark.parametrize("body", VALID)
def test_valid_templates_pass(body: str) -> None:
    """Ordinary Jinja (filters, conditions, local names, loops) is accepted."""
    check_template(body)
    assert render_sms(body, sample_vars(), optout_mention=None).text


def test_check_template_checks_the_subject() -> None:
    """A subject error names the subject, and an empty subject is refused."""
    with pytest.raises(TemplateError) as error:
        check_template("Bonjour", subject="{{ ccas.nom }}")
    assert error.value.code == "undefined_variable"
    assert "Objet" in str(error.value)
    with pytest.raises(TemplateError) as empty:
        check_template("Bonjour", subject="  ")
    assert empty.value.code == "empty"


# --- e-mail --------------------------------------------------------------------------------


class _TextOf(HTMLParser):
    """Collects text and links of an HTML document, to check what a reader sees."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.links: list[str] = []

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links.extend(value or "" for name, value in attrs if name == "href")


def _parse(html: str) -> _TextOf:
    parser = _TextOf()
    parser.feed(html)
    return parser


def test_render_email_with_html_template() -> None:
    """Both parts carry the unsubscribe link; HTML values are escaped."""
    variables = sample_vars(person=PersonVars("Madame", "Zoé", "<b>O'Brien</b>"))
    email = render_email(
        "Bonjour\n{{ person.last_name }}",
        "Bonjour {{ person.last_name }}",
        "<html><body><p>Bonjour {{ person.last_name }}</p></body></html>",
        variables,
        URL,
    )
    assert email.subject == "Bonjour <b>O'Brien</b>"  # one line: no header injection
    assert email.text == (f"Bonjour <b>O'Brien</b>\n\nPour ne plus recevoir nos messages : {URL}\n")
    assert "<b>O" not in email.html
    seen = _parse(email.html)
    assert "Bonjour <b>O'Brien</b>" in "".join(seen.text)
    assert "Pour ne plus recevoir nos messages : " in "".join(seen.text)
    assert seen.links == [URL]
    assert email.html.rstrip().endswith("</body></html>")


def test_render_email_without_html_builds_an_escaped_page() -> None:
    """Without an HTML template the text becomes escaped paragraphs in a French page."""
    email = render_email(
        "Objet",
        "Bonjour {{ person.first_name }} & bienvenue,\nligne 2\n\n<script>x</script>",
        None,
        sample_vars(),
        URL,
    )
    assert '<html lang="fr">' in email.html
    assert "<p>Bonjour Jeanne &amp; bienvenue,<br>\nligne 2</p>" in email.html
    assert "<script>" not in email.html
    assert _parse(email.html).links == [URL]


# --- default templates ---------------------------------------------------------------------

# Longer but realistic values: the defaults must still fit in two segments.
LONG_VARS = TemplateVars(
    PersonVars("Monsieur", "Jean-Baptiste", "Dubois-Lefebvre"),
    CcasVars(
        "CCAS de Villeneuve-d'Ascq",
        "0 800 12 34 56",
        "du lundi au vendredi de 8h30 à 12h et de 13h30 à 17h",
    ),
    CampaignVars("Plan canicule"),
)


def test_default_templates_are_all_there() -> None:
    """The five SMS templates, the e-mail invitation and the call script load, with segments."""
    templates = {t.key: t for t in load_default_templates()}
    assert {k: (t.channel, t.segment) for k, t in templates.items()} == {
        "invitation_domicilies": ("sms", "domicilies"),
        "invitation_aides_facultatives": ("sms", "aides_facultatives"),
        "invitation_animations": ("sms", "animations"),
        "invitation_registre_fragiles": ("sms", "registre_fragiles"),
        "relance": ("sms", None),
        "invitation": ("email", None),
        "appel_registre_fragiles": ("appel", "registre_fragiles"),
    }
    assert len({t.name for t in templates.values()}) == len(templates)
    email = templates["invitation"]
    assert email.subject and email.body_html and "<html" in email.body_html


SMS_DEFAULTS = [t for t in load_default_templates() if t.channel == "sms"]


@pytest.mark.parametrize("template", SMS_DEFAULTS, ids=lambda t: t.key)
@pytest.mark.parametrize("variables", [sample_vars(), LONG_VARS], ids=["sample", "long"])
def test_default_sms_templates_fit(template, variables: TemplateVars) -> None:
    """Each default SMS names the CCAS, the hotline and hours, is GSM-7 and at most 2 segments."""
    check_template(template.body)
    for needed in ("{{ ccas.name }}", "{{ ccas.hotline }}", "{{ ccas.hours }}"):
        assert needed in template.body
    result = render_sms(template.body, variables, optout_mention=OPTOUT)
    assert result.encoding == GSM7, result.ucs2_chars
    assert result.normalised is False  # written GSM-7 friendly, not fixed up
    assert 1 <= result.segments <= 2
    assert variables.ccas.hotline in result.text and variables.ccas.name in result.text


def test_default_email_template_renders() -> None:
    """The e-mail invitation renders for the sample person, with the hotline as a tel: link."""
    (template,) = [t for t in load_default_templates() if t.channel == "email"]
    check_template(template.body, template.subject, body_html=template.body_html)
    email = render_email(template.subject, template.body, template.body_html, sample_vars(), URL)
    assert "CCAS d'Amiens" in email.subject
    assert "Madame Martin" in email.text and "0 800 12 34 56" in email.text
    assert email.text.endswith(f"Pour ne plus recevoir nos messages : {URL}\n")
    seen = _parse(email.html)
    assert seen.links == ["tel:0800123456", URL]
    assert "CCAS d'Amiens" in "".join(seen.text)
    assert "http" not in email.html.replace(URL.replace("&", "&amp;"), "")  # no external resources


@pytest.mark.parametrize("template", SMS_DEFAULTS, ids=lambda t: t.key)
@pytest.mark.parametrize(
    ("person", "greeting"),
    [
        (PersonVars("Madame", "Paulette", "ANDRE"), "Bonjour Madame Andre,"),
        (PersonVars("", "PAULETTE", "ANDRE"), "Bonjour Paulette Andre,"),
        (PersonVars("", "paulette", "andre"), "Bonjour Paulette Andre,"),
        (PersonVars("Monsieur", "", "N'DIAYE-FALL"), "Bonjour Monsieur N'diaye-Fall,"),
    ],
    ids=["civility", "no-civility", "lower-case", "compound"],
)
def test_default_sms_greets_well_without_civility(template, person, greeting) -> None:
    """Names in proper case, the first name when there is no civility: never "Bonjour ANDRE,"."""
    text = render_sms(template.body, sample_vars(person=person), optout_mention=None).text
    assert greeting in text
    assert "ANDRE" not in text and "Bonjour ," not in text


def test_default_email_greets_well_without_civility() -> None:
    (template,) = [t for t in load_default_templates() if t.channel == "email"]
    person = PersonVars("", "PAULETTE", "ANDRE")
    email = render_email(
        template.subject, template.body, template.body_html, sample_vars(person=person), URL
    )
    assert email.text.startswith("Bonjour Paulette Andre,")
    assert "Bonjour Paulette Andre," in email.html

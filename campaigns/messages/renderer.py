"""Renders a campaign's message for one person, the template compiled once per campaign.

An SMS depends on the template, the CCAS, the campaign and the person's fields the
template reads; the first three are the same for the whole campaign. So the rendered
SMS (text, encoding, segments), or the error it raised, is kept by the values of the
person fields the template reads: the usual invitation reads the civility and the last
name only, and a town has far fewer of those pairs than people. An e-mail carries the
recipient's own unsubscribe link and is rendered for each person.

A template that is only text and variables (no filter, no tag: most of them) needs no
template engine to be rendered: its output is the text with the values put in. Such a
template is rendered by formatting, which is exact for it (see `_PlainSms`), checked
against the engine on tricky people when the campaign starts, and left to the engine
as soon as anything is unusual (an empty or overlong result).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import fields
from operator import itemgetter
from typing import Any

from jinja2 import Environment, TemplateSyntaxError, nodes

from campaigns.core.settings import Settings
from campaigns.messages.rendering import (
    ALLOWED_VARIABLES,
    MAX_OUTPUT,
    CampaignVars,
    CcasVars,
    PersonVars,
    TemplateError,
    TemplateVars,
    _tidy_text,
    render_email,
    render_sms_text,
)
from campaigns.messages.template_store import ccas_vars, person_vars
from campaigns.models import Campaign, TemplateVersion
from campaigns.registry.optouts import unsubscribe_url
from campaigns.rules.sms_encoding import sent_form

PERSON_FIELDS = tuple(f.name for f in fields(PersonVars))
# Rendered SMS kept at most; past it the cache starts again (memory stays bounded on a
# launch of millions whatever the names, and common pairs come back at once).
CACHE_LIMIT = 50_000

SmsContent = tuple[str, str, int]  # (text as sent, encoding, segments)

# Parses as the message sandbox does (same syntax, trailing newline dropped).
_PARSER = Environment(keep_trailing_newline=False)


def person_fields_read(source: str) -> tuple[str, ...]:
    """The person fields a template's output may depend on, in PERSON_FIELDS order.

    Only `person.x` (or `person["x"]`) with a known field counts as reading x; any other
    use of the name `person` (passed whole to a filter, looped over, reassigned...) means
    the output may depend on every field. A template that does not parse reads them all
    too: rendering will say what is wrong with it.
    """
    try:
        ast = _PARSER.parse(source)
    except TemplateSyntaxError:
        return PERSON_FIELDS
    read: set[str] = set()
    accessed: set[int] = set()
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        target = getattr(node, "node", None)
        if not isinstance(target, nodes.Name) or target.name != "person":
            continue
        attr: object = None
        if isinstance(node, nodes.Getattr):
            attr = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            attr = node.arg.value
        if attr in PERSON_FIELDS:
            read.add(str(attr))
            accessed.add(id(target))
    for name in ast.find_all(nodes.Name):
        if name.name == "person" and id(name) not in accessed:
            return PERSON_FIELDS
    return tuple(f for f in PERSON_FIELDS if f in read)


class _PlainSms:
    """An SMS template made of text and `{{ ns.field }}` only, rendered by `%` formatting.

    For such a template the sandbox's output is exactly the text with each value in its
    place: a variable is a string field of a frozen dataclass (None is already ""), with
    no filter or test to apply, and the text between them is what the parser kept
    (comments, whitespace control and the trailing newline already dealt with). What
    follows rendering (tidying, the empty check, the opt-out mention) is the same as
    `render_sms_text`'s. Built by `of`, which says None for any other template.
    """

    def __init__(self, form: str, fields_used: tuple[int, ...], mention: str) -> None:
        self.form = form
        self.fields_used = fields_used  # positions in (civility, first_name, last_name)
        self.mention = mention

    @classmethod
    def of(
        cls, source: str, ccas: CcasVars, campaign: CampaignVars, mention: str | None
    ) -> _PlainSms | None:
        try:
            ast = _PARSER.parse(source)
        except TemplateSyntaxError:
            return None
        constants = {"ccas": ccas, "campaign": campaign}
        form: list[str] = []
        used: list[int] = []
        for output in ast.body:
            if not isinstance(output, nodes.Output):
                return None
            for node in output.nodes:
                if isinstance(node, nodes.TemplateData):
                    form.append(node.data.replace("%", "%%"))
                    continue
                if not (
                    isinstance(node, nodes.Getattr)
                    and isinstance(node.node, nodes.Name)
                    and node.node.name in ALLOWED_VARIABLES
                    and node.attr in ALLOWED_VARIABLES[node.node.name]
                ):
                    return None
                if node.node.name == "person":
                    form.append("%s")
                    used.append(PERSON_FIELDS.index(node.attr))
                else:
                    value = getattr(constants[node.node.name], node.attr)
                    form.append(("" if value is None else str(value)).replace("%", "%%"))
        return cls("".join(form), tuple(used), (mention or "").strip())

    def text(self, person: PersonVars) -> str | None:
        """The SMS text before encoding, or None when the engine must say what is wrong."""
        values = (person.civility, person.first_name, person.last_name)
        return self.text_of(tuple(values[i] for i in self.fields_used))

    def text_of(self, values: tuple[str, ...]) -> str | None:
        """`text` given the values of `fields_used`, in that order (None for empty)."""
        if None in values:
            values = tuple("" if v is None else v for v in values)
        raw = self.form % values
        if len(raw) > MAX_OUTPUT:
            return None
        text = _tidy_text(raw)
        if not text:
            return None
        mention = self.mention
        if mention and not text.casefold().endswith(mention.casefold()):
            text = f"{text}\n{mention}"
        return text


# People on whom the formatting is checked against the engine before it is trusted.
_AWKWARD_PEOPLE = (
    ("Madame", "Jeanne", "Martin"),
    ("", "", ""),
    ("Monsieur", "  Jean\t ", "Du  Pont\r\n"),
    ("Madame", "Zoë 😜 50%", "N'Diaye-Çelik %s"),
    ("", "Stop au 36179", "STOP AU 36179"),
)


def _key_of(read: Sequence[str], columns: Sequence[str]) -> Callable[[Sequence[Any]], Any]:
    """A function giving, for a row, the values of the fields read (a hashable key)."""
    if not read:
        return lambda row: None
    return itemgetter(*(columns.index(name) for name in read))


class CampaignRenderer:
    """Renders one person's message with the template compiled once; SMS kept by their inputs.

    `columns` names the positions of a person row (civility, first_name, last_name and,
    for e-mail, email must be among them).
    """

    def __init__(
        self,
        campaign: Campaign,
        version: TemplateVersion,
        settings: Settings,
        columns: Sequence[str] = ("civility", "first_name", "last_name", "email"),
    ) -> None:
        self.channel = campaign.channel
        self.version = version
        self.settings = settings
        self.ccas = ccas_vars(settings, campaign.hotline)
        self.campaign = CampaignVars(name=campaign.name)
        self._columns = tuple(columns)
        self._person = itemgetter(*(columns.index(f) for f in PERSON_FIELDS))
        self._email_at = columns.index("email") if "email" in columns else None
        self._key = _key_of(person_fields_read(version.body), columns)
        self._sms: dict[Any, SmsContent | TemplateError] = {}
        self._plain = _PlainSms.of(
            version.body, self.ccas, self.campaign, settings.sms_optout_mention
        ) if self.channel == "sms" else None  # fmt: skip
        if self._plain is not None and not self._plain_agrees():
            self._plain = None
        self._plain_values: Callable[[Sequence[Any]], tuple[Any, ...]] | None = None
        if self._plain is not None:
            at = [columns.index(PERSON_FIELDS[i]) for i in self._plain.fields_used]
            self._plain_values = lambda row: tuple(row[i] for i in at)
            if len(at) > 1:  # itemgetter gives a tuple only for two positions or more
                self._plain_values = itemgetter(*at)

    def _engine_text(self, person: PersonVars) -> str:
        variables = TemplateVars(person=person, ccas=self.ccas, campaign=self.campaign)
        return render_sms_text(
            self.version.body, variables, optout_mention=self.settings.sms_optout_mention
        )

    def _plain_agrees(self) -> bool:
        """The formatting gives what the engine gives, on people chosen to trip it up."""
        assert self._plain is not None
        for values in _AWKWARD_PEOPLE:
            person = person_vars(*values)
            try:
                expected: str | None = self._engine_text(person)
            except TemplateError:
                expected = None
            if self._plain.text(person) != expected:
                return False
        return True

    def _variables(self, row: Sequence[Any]) -> TemplateVars:
        return TemplateVars(person=person_vars(*self._person(row)), ccas=self.ccas,
                            campaign=self.campaign)  # fmt: skip

    def sms(self, row: Sequence[Any]) -> SmsContent:
        """(text, encoding, segments) for this person; TemplateError if it does not render."""
        key = self._key(row)
        found = self._sms.get(key)
        if found is None:
            try:
                text = None
                if self._plain is not None and self._plain_values is not None:
                    text = self._plain.text_of(self._plain_values(row))
                if text is None:
                    text = self._engine_text(person_vars(*self._person(row)))
                found = sent_form(text, normalise=True, fold=self.version.fold_accents)
            except TemplateError as exc:
                # Kept without its traceback, which holds the frames of the rendering.
                found = TemplateError(exc.message, code=exc.code, line=exc.line)
            if len(self._sms) >= CACHE_LIMIT:
                self._sms.clear()
            self._sms[key] = found
        if isinstance(found, TemplateError):
            # A fresh one each time: raising the same object again would grow its traceback.
            raise TemplateError(found.message, code=found.code, line=found.line)
        return found

    def email(self, row: Sequence[Any]) -> tuple[str, str, str]:
        """(subject, text, html) for this person, with the unsubscribe link of their address."""
        address = row[self._email_at] if self._email_at is not None else None
        url = unsubscribe_url(
            self.settings.public_url, self.settings.signing_key, (address or "").strip()
        )
        version = self.version
        email = render_email(
            version.subject or "", version.body, version.body_html, self._variables(row), url
        )
        return email.subject, email.text, email.html

    def render(self, row: dict[str, Any]) -> dict[str, Any]:
        """One person's message as a dict (the person as a dict of their fields)."""
        values = [row.get(name) for name in self._columns]
        if self.channel == "sms":
            text, encoding, segments = self.sms(values)
            return {"text": text, "encoding": encoding, "segments": segments}
        subject, text, html = self.email(values)
        return {"subject": subject, "text": text, "html": html, "segments": 1}


__all__ = ["CACHE_LIMIT", "CampaignRenderer", "person_fields_read"]

"""Render message templates (SMS and e-mail) for one person, and the default templates.

Rendering itself happens in the sandbox of :mod:`campaigns.messages.sandbox`; the
variables a template sees are in :mod:`campaigns.messages.variables`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from markupsafe import Markup, escape

from campaigns.messages.sandbox import MAX_OUTPUT, SAFE_FILTERS, TemplateError, render_template
from campaigns.messages.variables import (
    ALLOWED_VARIABLES,
    CampaignVars,
    CcasVars,
    PersonVars,
    TemplateVars,
    Variables,
    sample_campaign,
    sample_ccas,
    sample_person,
    sample_vars,
)
from campaigns.rules.sms_encoding import SmsAnalysis, analyse

__all__ = [
    "ALLOWED_VARIABLES",
    "MAX_OUTPUT",
    "SAFE_FILTERS",
    "CampaignVars",
    "CcasVars",
    "PersonVars",
    "TemplateError",
    "TemplateVars",
    "Variables",
    "sample_campaign",
    "sample_ccas",
    "sample_person",
    "sample_vars",
]

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"

UNSUBSCRIBE_WORDING = "Pour ne plus recevoir nos messages : "

# --- SMS ----------------------------------------------------------------------------------

_SPACE_RUNS = re.compile(r"[ \t]{2,}")
_TRAILING_SPACES = re.compile(r"[ \t]+\n")


def _tidy_text(text: str) -> str:
    """Line endings to \\n, no doubled spaces (an empty civility), no trailing blanks."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _SPACE_RUNS.sub(" ", text)
    text = _TRAILING_SPACES.sub("\n", text)
    return text.strip()


def render_sms_text(body: str, variables: Variables, *, optout_mention: str | None) -> str:
    """The SMS text before any encoding transformation: rendered, tidied, mention appended.

    The opt-out mention goes on its own line (a line break costs one septet, like a
    space, and keeps "STOP au 36179" readable); it is not added twice if the template
    already ends with it.
    """
    text = _tidy_text(render_template(body, variables, part="Message"))
    if not text:
        raise TemplateError("Le message est vide.", code="empty")
    mention = (optout_mention or "").strip()
    if mention and not text.casefold().endswith(mention.casefold()):
        text = f"{text}\n{mention}"
    return text


def render_sms(
    body: str,
    variables: Variables,
    *,
    optout_mention: str | None,
    normalise: bool = True,
    fold: bool = False,
) -> SmsAnalysis:
    """Render an SMS for one person and analyse it; ``.text`` is what will be sent."""
    text = render_sms_text(body, variables, optout_mention=optout_mention)
    return analyse(text, normalise=normalise, fold=fold)


# --- e-mail -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


_HTML_PAGE = (
    '<!DOCTYPE html>\n<html lang="fr">\n<head>\n<meta charset="utf-8">\n'
    "<title>{title}</title>\n</head>\n"
    '<body style="font-family: Arial, Helvetica, sans-serif; font-size: 18px; '
    'line-height: 1.5; color: #222222;">\n{content}\n</body>\n</html>\n'
)


def text_to_html(text: str, *, title: str = "") -> str:
    """A plain HTML page showing the text: escaped, blank lines as paragraphs."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    line_break = Markup("<br>\n")
    content = "\n".join(
        f"<p>{line_break.join(escape(line) for line in p.splitlines())}</p>" for p in paragraphs
    )
    return _HTML_PAGE.format(title=escape(title), content=content)


def _append_to_body(html: str, fragment: str) -> str:
    index = html.lower().rfind("</body>")
    if index == -1:
        return f"{html.rstrip()}\n{fragment}\n"
    return f"{html[:index].rstrip()}\n{fragment}\n{html[index:]}"


def render_email(
    subject: str,
    body_text: str,
    body_html: str | None,
    variables: Variables,
    unsubscribe_url: str,
) -> RenderedEmail:
    """Render both parts of an e-mail for one person, with the unsubscribe link in each."""
    # One line only: a line break in a header would let a template inject headers.
    rendered_subject = " ".join(render_template(subject, variables, part="Objet").split())
    if not rendered_subject:
        raise TemplateError("L'objet du message est vide.", code="empty")
    text = _tidy_text(render_template(body_text, variables, part="Message"))
    if not text:
        raise TemplateError("Le message est vide.", code="empty")
    if body_html is None:
        html = text_to_html(text, title=rendered_subject)
    else:
        html = render_template(body_html, variables, html=True, part="Message HTML")
    url = escape(unsubscribe_url)
    footer = (
        '<p style="font-size: 14px; color: #555555;">'
        f'{escape(UNSUBSCRIBE_WORDING)}<a href="{url}">{url}</a></p>'
    )
    return RenderedEmail(
        subject=rendered_subject,
        text=f"{text}\n\n{UNSUBSCRIBE_WORDING}{unsubscribe_url}\n",
        html=_append_to_body(html, footer),
    )


# --- checks -------------------------------------------------------------------------------


def check_template(body: str, subject: str | None = None, *, body_html: str | None = None) -> None:
    """Raise TemplateError if the template has a syntax error or an unknown variable.

    The template is compiled and rendered against the sample person and CCAS, as a
    preview or a launch would do.
    """
    variables = sample_vars()
    if subject is not None and not " ".join(
        render_template(subject, variables, part="Objet").split()
    ):
        raise TemplateError("L'objet du message est vide.", code="empty")
    if not _tidy_text(render_template(body, variables, part="Message")):
        raise TemplateError("Le message est vide.", code="empty")
    if body_html is not None:
        render_template(body_html, variables, html=True, part="Message HTML")


# --- default templates --------------------------------------------------------------------


@dataclass(frozen=True)
class DefaultTemplate:
    """A template shipped with the application, offered to every new CCAS."""

    name: str  # French label shown to coordinators
    channel: str  # "sms", "email" or "appel"
    subject: str | None
    body: str
    segment: str | None  # the population it is written for, if any
    key: str = ""  # file stem, stable: use it to seed idempotently
    body_html: str | None = None


# file stem -> (label, segment code)
_SMS_DEFAULTS: dict[str, tuple[str, str | None]] = {
    "invitation_domicilies": ("Invitation - domiciliés", "domicilies"),
    "invitation_aides_facultatives": (
        "Invitation - aides facultatives",
        "aides_facultatives",
    ),
    "invitation_animations": ("Invitation - animations", "animations"),
    "invitation_registre_fragiles": (
        "Invitation - registre des personnes fragiles",
        "registre_fragiles",
    ),
    "relance": ("Relance", None),
}
_EMAIL_DEFAULTS: dict[str, tuple[str, str | None]] = {
    "invitation": ("Invitation (e-mail)", None),
}
_CALL_DEFAULTS: dict[str, tuple[str, str | None]] = {
    "appel_registre_fragiles": ("Appel - registre des personnes fragiles", "registre_fragiles"),
}


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8").rstrip("\n")


def load_default_templates(templates_dir: Path = TEMPLATES_DIR) -> list[DefaultTemplate]:
    """The shipped templates: ``templates/sms``, ``templates/email`` and ``templates/appel``."""
    found: list[DefaultTemplate] = []
    for path in sorted((templates_dir / "sms").glob("*.j2")):
        label, segment = _SMS_DEFAULTS.get(path.stem, (path.stem, None))
        found.append(DefaultTemplate(label, "sms", None, _read(path), segment, key=path.stem))
    email_dir = templates_dir / "email"
    for path in sorted(email_dir.glob("*.txt.j2")):
        key = path.name.removesuffix(".txt.j2")
        label, segment = _EMAIL_DEFAULTS.get(key, (key, None))
        subject_path = email_dir / f"{key}.subject.j2"
        html_path = email_dir / f"{key}.html.j2"
        found.append(
            DefaultTemplate(
                label,
                "email",
                _read(subject_path) if subject_path.exists() else key,
                _read(path),
                segment,
                key=key,
                body_html=_read(html_path) if html_path.exists() else None,
            )
        )
    # Callers' scripts: read by staff on the call sheet, never sent to anyone.
    for path in sorted((templates_dir / "appel").glob("*.j2")):
        label, segment = _CALL_DEFAULTS.get(path.stem, (path.stem, None))
        found.append(DefaultTemplate(label, "appel", None, _read(path), segment, key=path.stem))
    return found

"""Render message templates (SMS and e-mail) for one person, in a Jinja2 sandbox.

Templates are written by CCAS staff through the web pages, so they run in a
``SandboxedEnvironment`` with ``StrictUndefined``: a misspelt variable is an error
shown at preview or launch, never an empty gap in a message sent to thousands.
The variables are those of DESIGN.md: ``person.civility``, ``person.first_name``,
``person.last_name``, ``ccas.name``, ``ccas.hotline``, ``ccas.hours``, ``campaign.name``.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import (
    StrictUndefined,
    Template,
    TemplateSyntaxError,
    UndefinedError,
    nodes,
    pass_eval_context,
)
from jinja2 import filters as jinja_filters
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment, SecurityError
from markupsafe import Markup, escape

from campaigns.rules.sms_encoding import SmsAnalysis, analyse

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"

UNSUBSCRIBE_WORDING = "Pour ne plus recevoir nos messages : "


# --- variables ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonVars:
    """What a template may say about the recipient."""

    civility: str = ""  # "Madame", "Monsieur" or empty
    first_name: str = ""
    last_name: str = ""


@dataclass(frozen=True)
class CcasVars:
    """What a template may say about the sending CCAS."""

    name: str
    hotline: str
    hours: str


@dataclass(frozen=True)
class CampaignVars:
    """What a template may say about the campaign."""

    name: str


@dataclass(frozen=True)
class TemplateVars:
    """Everything a template can see, one object per variable namespace."""

    person: PersonVars
    ccas: CcasVars
    campaign: CampaignVars

    def as_context(self) -> dict[str, object]:
        return {"person": self.person, "ccas": self.ccas, "campaign": self.campaign}


# Allowed names, namespace by namespace, read from the dataclasses so they cannot drift.
ALLOWED_VARIABLES: dict[str, tuple[str, ...]] = {
    "person": tuple(f.name for f in fields(PersonVars)),
    "ccas": tuple(f.name for f in fields(CcasVars)),
    "campaign": tuple(f.name for f in fields(CampaignVars)),
}


def sample_person() -> PersonVars:
    """A plausible recipient, used when a template is previewed without a person."""
    return PersonVars(civility="Madame", first_name="Jeanne", last_name="Martin")


def sample_ccas() -> CcasVars:
    """A plausible CCAS, with values of a typical length (for segment counts)."""
    return CcasVars(
        name="CCAS d'Amiens",
        hotline="0 800 12 34 56",
        hours="du lundi au vendredi de 9h à 17h",
    )


def sample_campaign() -> CampaignVars:
    return CampaignVars(name="Prendre des nouvelles")


def sample_vars(
    person: PersonVars | None = None,
    ccas: CcasVars | None = None,
    campaign: CampaignVars | None = None,
) -> TemplateVars:
    """The sample values, each replaceable by a real one."""
    return TemplateVars(
        person=person or sample_person(),
        ccas=ccas or sample_ccas(),
        campaign=campaign or sample_campaign(),
    )


Variables = TemplateVars | Mapping[str, object]


def _context(variables: Variables) -> dict[str, object]:
    if isinstance(variables, TemplateVars):
        return variables.as_context()
    return dict(variables)


# --- errors -------------------------------------------------------------------------------


class TemplateError(Exception):
    """A template that cannot be used, with a French message for the coordinator.

    ``code`` is one of "syntax", "undefined_variable", "forbidden", "empty", "render",
    "too_long".
    """

    def __init__(self, message: str, *, code: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.line = line


def _where(part: str, line: int | None) -> str:
    return f"{part}, ligne {line}" if line else part


def _allowed_list() -> str:
    return ", ".join(f"{ns}.{name}" for ns, names in ALLOWED_VARIABLES.items() for name in names)


# --- environments -------------------------------------------------------------------------


def _finalize(value: object) -> object:
    # A missing first name stored as NULL must print as nothing, not "None".
    return "" if value is None else value


# A rendered message longer than this is a mistake or an attack, never a message.
MAX_OUTPUT = 20_000
# Filters a message may use. Left out: those that build text from a width or a format
# ("center", "indent", "wordwrap", "format": `"%020000000d"|format(1)` is 20 MB) or that
# multiply text without bound, and those that reach objects ("attr", "map"...). "replace"
# stays, with the length of its result checked before it is built.
SAFE_FILTERS = frozenset(
    {
        "abs", "capitalize", "count", "d", "default", "e", "escape", "first", "float",
        "int", "join", "last", "length", "list", "lower", "replace", "round", "string", "striptags",
        "title", "trim", "truncate", "upper", "urlencode", "wordcount",
    }
)  # fmt: skip


class _MessageSandbox(SandboxedEnvironment):
    """The Jinja sandbox, also refusing the operators that can build huge strings."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        numbers = all(isinstance(v, int | float) for v in (left, right))
        # "x" * 10**9 would fill memory, and "%" formats like the format filter; numbers
        # may still be multiplied, added and taken modulo, but not raised to a power.
        if operator == "**" or (operator in {"*", "%"} and not numbers):
            raise SecurityError(f"opérateur {operator} interdit")
        result = super().call_binop(context, operator, left, right)
        if isinstance(result, str) and len(result) > MAX_OUTPUT:
            raise SecurityError("texte trop long")
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        # The sandbox runs str.format itself, with no limit on widths ("{:>999999999}").
        if super().wrap_str_format(value) is None:
            return None

        def refused(*args: Any, **kwargs: Any) -> str:
            raise SecurityError("mise en forme de texte interdite")

        return refused

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        # str.format and friends build text from a width: "{:>999999999}".format(1).
        if isinstance(obj, str) and attr in {
            "format",
            "format_map",
            "center",
            "ljust",
            "rjust",
            "zfill",
            "expandtabs",
            "join",
        }:
            return False
        return super().is_safe_attribute(obj, attr, value)


def _bounded_replace(
    eval_ctx: EvalContext, text: Any, old: Any, new: Any, count: int | None = None
) -> Any:
    value, old, new = str(text), str(old), str(new)
    hits = value.count(old) if old else len(value) + 1
    if count is not None and count >= 0:
        hits = min(hits, count)
    if len(value) + hits * (len(new) - len(old)) > MAX_OUTPUT:
        raise SecurityError("texte trop long")
    return jinja_filters.do_replace(eval_ctx, text, old, new, count)


def _make_env(*, autoescape: bool) -> SandboxedEnvironment:
    env = _MessageSandbox(
        undefined=StrictUndefined,
        autoescape=autoescape,
        finalize=_finalize,
        keep_trailing_newline=False,
    )
    # Messages need only the variables and filters: no range(), lipsum(), namespace()...
    env.globals.clear()
    env.filters = {name: f for name, f in env.filters.items() if name in SAFE_FILTERS}
    env.filters["replace"] = pass_eval_context(_bounded_replace)
    env.tests = {name: t for name, t in env.tests.items() if name not in {"callable"}}
    return env


_TEXT_ENV = _make_env(autoescape=False)
_HTML_ENV = _make_env(autoescape=True)


# Names Jinja itself provides inside loops, macros and blocks.
_JINJA_NAMES = frozenset({"loop", "self", "super", "caller", "varargs", "kwargs"})


# Statements a message does not need, and that make rendering time unbounded (recursion,
# other templates) or let a coordinator's template read files.
_FORBIDDEN_NODES: tuple[type[nodes.Node], ...] = (
    nodes.Macro,
    nodes.CallBlock,
    nodes.Include,
    nodes.Import,
    nodes.FromImport,
    nodes.Extends,
    nodes.Block,
)


def _names(node: nodes.Node) -> list[nodes.Name]:
    # find_all looks only below a node; a bare name is the node itself.
    found = list(node.find_all(nodes.Name))
    return [node, *found] if isinstance(node, nodes.Name) else found


def _check_cost(ast: nodes.Template, part: str) -> None:
    """Refuse what makes rendering time or size grow beyond the template's own length.

    With one level of loops over short variables, no recursion and no name built from
    itself, rendering is linear in the template: a preview can never hold the server.
    """
    for node in ast.find_all(_FORBIDDEN_NODES):
        raise TemplateError(
            f"{_where(part, node.lineno)} : instruction non autorisée dans un message.",
            code="forbidden",
            line=node.lineno,
        )
    for loop in ast.find_all(nodes.For):
        inner = next(iter(loop.find_all(nodes.For)), None)
        if inner is not None or loop.recursive:
            line = inner.lineno if inner is not None else loop.lineno
            raise TemplateError(
                f"{_where(part, line)} : boucles imbriquées non autorisées.",
                code="forbidden",
                line=line,
            )
    assignments = list(ast.find_all((nodes.Assign, nodes.AssignBlock, nodes.With)))
    assigned = {
        name.name
        for node in assignments
        for target in (node.targets if isinstance(node, nodes.With) else [node.target])
        for name in _names(target)
    }
    for node in assignments:
        values: list[nodes.Node]
        if isinstance(node, nodes.Assign):
            values = [node.node]
        elif isinstance(node, nodes.AssignBlock):
            values = list(node.body)
        else:
            values = list(node.values)
        # {% set a = a ~ a %} repeated doubles the text each time.
        if any(name.name in assigned for value in values for name in _names(value)):
            raise TemplateError(
                f"{_where(part, node.lineno)} : une variable ne peut pas être construite "
                "à partir d'une autre variable du modèle.",
                code="forbidden",
                line=node.lineno,
            )
    for node in ast.find_all(nodes.Filter):
        if node.name not in SAFE_FILTERS:
            raise TemplateError(
                f"{_where(part, node.lineno)} : filtre non autorisé ({node.name}).",
                code="forbidden",
                line=node.lineno,
            )


def _check_names(ast: nodes.Template, part: str) -> None:
    """Refuse unknown variables before rendering, naming them as the coordinator wrote them."""
    parents: set[int] = set()
    problems: list[tuple[int, str, str]] = []  # (line, code, text)
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node
        if not isinstance(target, nodes.Name) or target.name not in ALLOWED_VARIABLES:
            continue
        parents.add(id(target))
        if isinstance(node, nodes.Getattr):
            attr = node.attr
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            attr = node.arg.value
        else:
            problems.append((node.lineno, "undefined_variable", f"{target.name}[...]"))
            continue
        if attr.startswith("_"):
            problems.append((node.lineno, "forbidden", f"{target.name}.{attr}"))
        elif attr not in ALLOWED_VARIABLES[target.name]:
            problems.append((node.lineno, "undefined_variable", f"{target.name}.{attr}"))
    assigned = {n.name for n in ast.find_all(nodes.Name) if n.ctx in ("store", "param")}
    assigned |= _JINJA_NAMES
    for name in ast.find_all(nodes.Name):
        if name.ctx != "load" or id(name) in parents or name.name in assigned:
            continue
        problems.append((name.lineno, "undefined_variable", name.name))
    if not problems:
        return
    line, code, _ = min(problems)
    names = ", ".join(dict.fromkeys(text for _, c, text in sorted(problems) if c == code))
    if code == "forbidden":
        message = f"{_where(part, line)} : accès interdit ({names})."
    else:
        message = (
            f"{_where(part, line)} : variable inconnue ({names}). "
            f"Variables disponibles : {_allowed_list()}."
        )
    raise TemplateError(message, code=code, line=line)


@lru_cache(maxsize=256)
def _compile(source: str, html: bool, part: str) -> Template:
    """Parse, check and compile once; a campaign renders the same template thousands of times."""
    env = _HTML_ENV if html else _TEXT_ENV
    try:
        ast = env.parse(source)
    except TemplateSyntaxError as exc:
        detail = (exc.message or "").rstrip(".")
        raise TemplateError(
            f"{_where(part, exc.lineno)} : erreur de syntaxe ({detail}).",
            code="syntax",
            line=exc.lineno,
        ) from exc
    _check_cost(ast, part)
    _check_names(ast, part)
    return env.from_string(source)


def _template_line(exc: BaseException) -> int | None:
    # Jinja rewrites tracebacks so that template frames carry the template's line numbers.
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<template>"]
    return frames[-1].lineno if frames else None


def _render(source: str, variables: Variables, *, html: bool = False, part: str) -> str:
    template = _compile(source, html, part)
    try:
        text = template.render(_context(variables))
    except SecurityError as exc:
        line = _template_line(exc)
        raise TemplateError(
            f"{_where(part, line)} : accès interdit.", code="forbidden", line=line
        ) from exc
    except UndefinedError as exc:
        line = _template_line(exc)
        raise TemplateError(
            f"{_where(part, line)} : variable inconnue ({exc.message}). "
            f"Variables disponibles : {_allowed_list()}.",
            code="undefined_variable",
            line=line,
        ) from exc
    except Exception as exc:  # a template may fail in many ways (a filter on a bad value...)
        line = _template_line(exc)
        raise TemplateError(
            f"{_where(part, line)} : le modèle ne peut pas être affiché ({exc}).",
            code="render",
            line=line,
        ) from exc
    if len(text) > MAX_OUTPUT:
        raise TemplateError(
            f"{part} : le texte obtenu est beaucoup trop long "
            f"({len(text)} caractères, au plus {MAX_OUTPUT}).",
            code="too_long",
        )
    return text


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
    text = _tidy_text(_render(body, variables, part="Message"))
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
    rendered_subject = " ".join(_render(subject, variables, part="Objet").split())
    if not rendered_subject:
        raise TemplateError("L'objet du message est vide.", code="empty")
    text = _tidy_text(_render(body_text, variables, part="Message"))
    if not text:
        raise TemplateError("Le message est vide.", code="empty")
    if body_html is None:
        html = text_to_html(text, title=rendered_subject)
    else:
        html = _render(body_html, variables, html=True, part="Message HTML")
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
    if subject is not None and not " ".join(_render(subject, variables, part="Objet").split()):
        raise TemplateError("L'objet du message est vide.", code="empty")
    if not _tidy_text(_render(body, variables, part="Message")):
        raise TemplateError("Le message est vide.", code="empty")
    if body_html is not None:
        _render(body_html, variables, html=True, part="Message HTML")


# --- default templates --------------------------------------------------------------------


@dataclass(frozen=True)
class DefaultTemplate:
    """A template shipped with the application, offered to every new CCAS."""

    name: str  # French label shown to coordinators
    channel: str  # "sms" or "email"
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


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8").rstrip("\n")


def load_default_templates(templates_dir: Path = TEMPLATES_DIR) -> list[DefaultTemplate]:
    """The default SMS and e-mail templates read from ``templates/sms`` and ``templates/email``."""
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
    return found

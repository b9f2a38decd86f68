"""The Jinja2 sandbox messages render in: checked names, bounded cost, French errors.

Templates are written by CCAS staff through the web pages, so they run in a
``SandboxedEnvironment`` with ``StrictUndefined``: a misspelt variable is an error
shown at preview or launch, never an empty gap in a message sent to thousands. What could
make rendering slow or huge (formatting widths, nested loops, recursion, text built from
itself) is refused before the template ever runs.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from functools import lru_cache
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
from jinja2.exceptions import SecurityError
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from campaigns.messages.variables import ALLOWED_VARIABLES, Variables, context_of

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
    assignments: list[nodes.Assign | nodes.AssignBlock | nodes.With] = [
        node
        for node in ast.find_all((nodes.Assign, nodes.AssignBlock, nodes.With))
        if isinstance(node, nodes.Assign | nodes.AssignBlock | nodes.With)
    ]
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
        assert isinstance(node, nodes.Getattr | nodes.Getitem)
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


def render_template(source: str, variables: Variables, *, html: bool = False, part: str) -> str:
    template = _compile(source, html, part)
    try:
        text = template.render(context_of(variables))
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

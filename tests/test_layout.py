"""The layout keeps its promises: imports point one way, no cycles, small modules.

DESIGN.md's rule, read from every module's imports (function-level ones included, since
a function-level import is the usual way to hide a cycle; imports under
``if TYPE_CHECKING:`` are left out, they never run):
- ``web``, ``cli`` and ``workers`` use the domain packages, which use ``core``, ``rules``
  and ``models``; nothing below imports anything above it;
- the domain never imports a provider SDK, nor any provider but the small interface in
  ``providers.base``; ``providers`` know nothing of the project; only Vonage's webhook
  handlers (``campaigns.web.webhooks``) read Vonage's wire formats and signatures.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("campaigns", "providers", "workers")
DOMAIN = (
    "campaigns.registry",
    "campaigns.messages",
    "campaigns.campaign",
    "campaigns.dispatch",
    "campaigns.replies",
    "campaigns.escalations",
    "campaigns.calls",
    "campaigns.staff",
)
# What each layer may import of the project (a prefix match on dotted names).
ALLOWED: dict[str, tuple[str, ...]] = {
    "campaigns.rules": ("campaigns.rules",),
    "campaigns.models": ("campaigns.models", "campaigns.rules"),
    "campaigns.core": ("campaigns.core", "campaigns.models", "campaigns.rules", "providers.base"),
    **{
        package: (
            *DOMAIN,
            "campaigns.core",
            "campaigns.models",
            "campaigns.rules",
            "providers.base",
        )
        for package in DOMAIN
    },
    "campaigns.web": (
        "campaigns.web",
        *DOMAIN,
        "campaigns.core",
        "campaigns.models",
        "campaigns.rules",
        "providers.base",
    ),
    # Vonage's webhooks are an adapter at the edge: they read Vonage's wire formats.
    "campaigns.web.webhooks": (
        "campaigns.web",
        *DOMAIN,
        "campaigns.core",
        "campaigns.models",
        "campaigns.rules",
        "providers.base",
        "providers.vonage.payloads",
        "providers.vonage.signatures",
    ),
    "campaigns.cli": ("campaigns", "providers", "workers"),
    "workers": (
        "workers",
        *DOMAIN,
        "campaigns.core",
        "campaigns.models",
        "campaigns.rules",
        "providers",
    ),
    "providers": ("providers",),
}
# Third-party packages only some layers may use.
SDKS = ("vonage", "aiosmtplib", "requests", "urllib3")
SDK_USERS = ("providers",)
WEB_FRAMEWORKS = ("aiohttp.web", "aiohttp_jinja2", "aiohttp_session")
WEB_USERS = ("campaigns.web", "campaigns.cli", "providers", "workers")
MAX_LINES = 500


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module (or module.name for `from x import name`)
    line: int
    nested: bool  # inside a function


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            modules[module_name(path)] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(name: str, path: Path) -> Iterator[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"))

    def walk(node: ast.AST, nested: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    yield from walk(other, nested)
                continue
            inner = nested or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield Import(name, alias.name, child.lineno, nested)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                for alias in child.names:
                    yield Import(name, f"{child.module}.{alias.name}", child.lineno, nested)
            yield from walk(child, inner)

    yield from walk(tree, False)


def layer_of(module: str) -> str | None:
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def within(target: str, prefixes: tuple[str, ...]) -> bool:
    return any(target == p or target.startswith(p + ".") for p in prefixes)


def resolve(target: str, modules: dict[str, Path]) -> str | None:
    """The project module an import names (`from a.b import c` is a.b.c or a.b)."""
    if target in modules:
        return target
    parent = target.rsplit(".", 1)[0]
    return parent if parent in modules else None


ALL_MODULES = project_modules()
ALL_IMPORTS = [imp for name, path in ALL_MODULES.items() for imp in imports_of(name, path)]


def test_every_module_has_a_layer() -> None:
    lost = [name for name in ALL_MODULES if layer_of(name) is None and name not in PACKAGES]
    assert not lost, f"modules outside any layer of the layout: {lost}"


def test_arrows_point_one_way() -> None:
    wrong = []
    for imp in ALL_IMPORTS:
        layer = layer_of(imp.source)
        if layer is None or not within(imp.target, PACKAGES):
            continue
        if not within(imp.target, ALLOWED[layer]):
            wrong.append(f"{imp.source}:{imp.line} imports {imp.target}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    ("libraries", "users"), [(SDKS, SDK_USERS), (WEB_FRAMEWORKS, WEB_USERS)], ids=["sdk", "web"]
)
def test_frameworks_stay_at_the_edge(libraries: tuple[str, ...], users: tuple[str, ...]) -> None:
    wrong = [
        f"{imp.source}:{imp.line} imports {imp.target}"
        for imp in ALL_IMPORTS
        if within(imp.target, libraries) and not within(imp.source, users)
    ]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {name: set() for name in ALL_MODULES}
    for imp in ALL_IMPORTS:
        target = resolve(imp.target, ALL_MODULES)
        # A package's __init__ importing its own modules is not a cycle of design.
        if target is not None and target != imp.source and not target.startswith(imp.source + "."):
            graph[imp.source].add(target)
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(cycles)


def test_the_checks_see_a_wrong_arrow(tmp_path: Path) -> None:
    """The rules above are not vacuous: a rule module importing the web is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from campaigns.web.app import create_app\n")
    found = list(imports_of("campaigns.rules.bad", bad))
    assert found == [Import("campaigns.rules.bad", "campaigns.web.app.create_app", 2, True)]
    assert not within(found[0].target, ALLOWED[layer_of(found[0].source) or ""])


def test_modules_are_small() -> None:
    paths = [
        *ALL_MODULES.values(),
        *(ROOT / "tests").rglob("*.py"),
        *(ROOT / "bench").rglob("*.py"),
    ]
    large = {
        str(path.relative_to(ROOT)): lines
        for path in paths
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not large, large

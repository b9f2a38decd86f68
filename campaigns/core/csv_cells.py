"""CSV cells that a spreadsheet will not run: formula-looking text is neutralised.

A register line or a reply can hold "=HYPERLINK(...)" or "+33..." typed by anyone; a
coordinator opening an export in a spreadsheet must see text, never run it. OWASP's rule:
a cell starting with = + - @ tab or carriage return gets a leading apostrophe.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["safe_cell", "safe_row"]

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """The value, with text that a spreadsheet would evaluate turned into plain text."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def safe_row(values: Iterable[Any]) -> list[Any]:
    return [safe_cell(value) for value in values]

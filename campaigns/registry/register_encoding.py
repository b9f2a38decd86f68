"""Decoding a register file: UTF-8 (BOM or not), UTF-16 with BOM, else Windows-1252.

Spreadsheets saved as such (not as CSV) are recognised and refused with the way out.
"""

from __future__ import annotations

import re

from campaigns.registry.register_issues import FILE_ERRORS, RegisterFileError

__all__ = ["decode_register"]

_SPREADSHEET_MAGIC = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0")  # .xlsx/.ods (zip), .xls


def decode_register(data: bytes) -> tuple[str, str]:
    """The text of the file and the encoding used: UTF-8 (BOM or not), UTF-16 with BOM, cp1252."""
    if not data.strip():
        raise RegisterFileError("empty_file", FILE_ERRORS["empty_file"])
    if data.startswith(_SPREADSHEET_MAGIC):
        raise RegisterFileError(
            "not_csv",
            "Ce fichier est un classeur (Excel ou LibreOffice), pas un CSV : "
            "ouvrez-le et enregistrez-le au format « CSV UTF-8 » ou « CSV (point-virgule) ».",
        )
    if data.startswith(b"\xef\xbb\xbf"):
        candidates = ["utf-8-sig"]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        candidates = ["utf-16"]  # Excel's "Texte Unicode" always writes the BOM
    else:
        # Valid UTF-8 is almost never accidental for French text; otherwise Windows-1252,
        # which is what Excel writes for "CSV (séparateur : point-virgule)" on French Windows.
        candidates = ["utf-8", "cp1252"]
    for encoding in candidates:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if not text.strip():
            raise RegisterFileError("empty_file", FILE_ERRORS["empty_file"])
        if _looks_like_text(text):
            return text, encoding
    raise RegisterFileError(
        "unreadable_encoding",
        "Le fichier n'est pas un texte lisible (ni UTF-8, ni Windows-1252, ni UTF-16 avec BOM). "
        "Enregistrez-le depuis le tableur au format « CSV UTF-8 ».",
    )


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")


def _looks_like_text(text: str) -> bool:
    # NUL characters mean UTF-16 without BOM or a binary file; other control characters,
    # beyond a stray one, mean the guess was wrong.
    if "\x00" in text:
        return False
    return len(_CONTROL.findall(text)) <= max(2, len(text) // 1000)

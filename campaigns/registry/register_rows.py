"""The rows of a register: each checked into a `RegisterRow`, or rejected, with its warnings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from campaigns.registry.register_columns import EXTRA_DATE_FIELDS, Layout
from campaigns.registry.register_issues import REASONS, RowIssue
from campaigns.registry.register_values import (
    DateError,
    birth_date_of,
    clean_cell,
    identity_key,
    normalize_civility,
    normalize_email,
    parse_french_date,
)
from campaigns.rules.phones import Phone, PhoneCell, parse_phone_cell

__all__ = ["RegisterRow", "RowContext", "read_row", "reject", "warn"]


@dataclass(slots=True)
class RegisterRow:
    """One accepted person, as the file describes them."""

    line: int
    external_ref: str | None
    civility: str | None
    last_name: str
    first_name: str
    birth_date: date | None
    mobile: Phone | None
    landline: Phone | None
    email: str | None
    district: str | None
    referent_email: str | None
    extra: dict[str, Any] = field(default_factory=dict)
    other_phones: tuple[Phone, ...] = ()


@dataclass(slots=True)
class RowContext:
    """The rows read so far, their issues, and what later rows are checked against."""

    layout: Layout
    default_region: str
    today: date
    rows: list[RegisterRow] = field(default_factory=list)
    rejected: list[RowIssue] = field(default_factory=list)
    warnings: list[RowIssue] = field(default_factory=list)
    seen_refs: dict[str, int] = field(default_factory=dict)
    seen_people: dict[str, tuple[int, str | None]] = field(default_factory=dict)


def _cell(cells: list[str], layout: Layout, name: str) -> str:
    index = layout.fields.get(name)
    return clean_cell(cells[index]) if index is not None else ""


def reject(ctx: RowContext, line: int, reason: str, detail: str) -> None:
    ctx.rejected.append(RowIssue(line, reason, detail))


def warn(ctx: RowContext, line: int, reason: str, detail: str) -> None:
    ctx.warnings.append(RowIssue(line, reason, detail))


def read_row(ctx: RowContext, line: int, cells: list[str]) -> None:
    layout = ctx.layout
    if len(cells) > layout.width and any(c.strip() for c in cells[layout.width :]):
        reject(
            ctx,
            line,
            "wrong_column_count",
            f"{len(cells)} cellules pour {layout.width} colonnes : un séparateur dans une "
            "cellule sans guillemets décale probablement les colonnes",
        )
        return
    # Fewer cells than columns: trailing empty cells that the writer left out.
    cells = cells + [""] * (layout.width - len(cells))
    last_name = _cell(cells, layout, "last_name")
    first_name = _cell(cells, layout, "first_name")
    if not last_name:
        reject(ctx, line, "missing_name", "La cellule « Nom » est vide")
        return
    birth_text = _cell(cells, layout, "birth_date")
    birth_date: date | None = None
    if birth_text:
        try:
            birth_date = birth_date_of(birth_text, ctx.today)
        except DateError as error:
            reject(ctx, line, "invalid_birth_date", str(error))
            return
    external_ref = _cell(cells, layout, "external_ref") or None
    key = identity_key(last_name, first_name, birth_date) if birth_date else None
    if _is_duplicate(ctx, line, external_ref, key):
        return

    phones = _phones(ctx, line, cells)
    email = _email(ctx, line, cells)
    referent = _cell(cells, layout, "referent")
    referent_email = normalize_email(referent) if referent else None
    extra = _extra(ctx, line, cells)
    if referent and referent_email is None:
        extra["referent_name"] = referent
    ctx.rows.append(
        RegisterRow(
            line=line,
            external_ref=external_ref,
            civility=normalize_civility(_cell(cells, layout, "civility")),
            last_name=last_name,
            first_name=first_name,
            birth_date=birth_date,
            mobile=phones.mobile,
            landline=phones.landline or next(iter(phones.others), None),
            email=email,
            district=_cell(cells, layout, "district") or None,
            referent_email=referent_email,
            extra=extra,
            other_phones=phones.others if phones.landline else phones.others[1:],
        )
    )


def _is_duplicate(ctx: RowContext, line: int, external_ref: str | None, key: str | None) -> bool:
    # Same file number: the same dossier twice. Same names and birth date: the same person,
    # unless both rows carry different file numbers (then only a warning: two dossiers).
    if external_ref is not None and external_ref in ctx.seen_refs:
        first = ctx.seen_refs[external_ref]
        reject(ctx, line, "duplicate_in_file", f"Même n° de dossier qu'à la ligne {first}")
        return True
    # Without a birth date, two "Jean Martin" may well be two people: names alone never match.
    if key is not None and key in ctx.seen_people:
        first, first_ref = ctx.seen_people[key]
        if first_ref is None or external_ref is None:
            reject(
                ctx,
                line,
                "duplicate_in_file",
                f"Mêmes nom, prénom et date de naissance qu'à la ligne {first}",
            )
            return True
        warn(
            ctx,
            line,
            "possible_duplicate",
            f"Mêmes nom, prénom et date de naissance qu'à la ligne {first}, "
            "avec un autre n° de dossier",
        )
    if external_ref is not None:
        ctx.seen_refs[external_ref] = line
    if key is not None:
        ctx.seen_people.setdefault(key, (line, external_ref))
    return False


def _phones(ctx: RowContext, line: int, cells: list[str]) -> PhoneCell:
    layout = ctx.layout
    if not layout.phones:
        return PhoneCell()
    texts = [cells[i].strip() for i in layout.phones if cells[i].strip()]
    phones = parse_phone_cell(" / ".join(texts), ctx.default_region) if texts else PhoneCell()
    if phones.invalid:
        shown = ", ".join(f"« {text} »" for text in phones.invalid)
        warn(ctx, line, "invalid_phone", f"Numéro invalide ignoré : {shown}")
    if phones.mobile is None:
        if phones.landline is not None or phones.others:
            warn(ctx, line, "landline_only", REASONS["landline_only"])
        elif not phones.invalid:
            detail = REASONS["no_phone"]
            if phones.note:
                detail += f" (mention « {phones.note} »)"
            warn(ctx, line, "no_phone", detail)
    foreign = [p for p in phones.numbers if p.is_foreign]
    if foreign:
        shown = ", ".join(f"{p.e164} ({p.region})" for p in foreign)
        warn(ctx, line, "foreign_number", f"Numéro étranger : {shown}")
    return phones


def _email(ctx: RowContext, line: int, cells: list[str]) -> str | None:
    text = _cell(cells, ctx.layout, "email")
    if not text:
        return None
    email = normalize_email(text)
    if email is None:
        warn(ctx, line, "invalid_email", f"« {text} » n'est pas une adresse e-mail")
    return email


def _extra(ctx: RowContext, line: int, cells: list[str]) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    for name in ctx.layout.extras:
        value = _cell(cells, ctx.layout, name)
        if not value:
            continue
        if name in EXTRA_DATE_FIELDS:
            try:
                extra[name] = parse_french_date(value)
            except DateError as error:
                warn(ctx, line, "invalid_date", str(error))
            continue
        extra[name] = value
    return extra

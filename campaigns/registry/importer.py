"""Importing a register file: matching rows to people, planning the writes, one audited report.

The writes themselves, in bulk, are in `campaigns.registry.import_writing`.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from campaigns.core import audit
from campaigns.core.audit import Actor
from campaigns.core.db import on_postgres
from campaigns.core.errors import Invalid
from campaigns.models.registry import SEGMENTS
from campaigns.registry.import_writing import (
    FRAGILE_FIELDS,
    PERSON_FIELDS,
    PlannedRow,
    chunks,
    create_people,
    update_people,
    write_memberships,
)
from campaigns.registry.register_file import ParsedRegister, parse_register
from campaigns.registry.register_issues import RegisterFileError, RowIssue
from campaigns.registry.register_rows import RegisterRow
from campaigns.registry.register_values import identity_key, normalize_header

SEGMENT_CODE = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
FRAGILE = "registre_fragiles"
# Small enough for SQLite's bound-variable limit, large enough to keep round trips few.
LOOKUP_CHUNK = 500
MAX_LENGTHS = {
    "external_ref": 64,
    "civility": 16,
    "last_name": 100,
    "first_name": 100,
    "address": 255,
    "district": 100,
    "referent_email": 254,
    "email": 254,
}
FRAGILE_LENGTHS = {
    "category": 40,
    "registered_by": 20,
    "emergency_contact": 255,
    "home_care_service": 255,
}
# An advisory lock key: two imports at once would both create the same new people.
IMPORT_LOCK = 0x434341_53

# Rows written after which PostgreSQL's statistics and visibility map are refreshed.
ANALYZE_AFTER = 2000

Progress = Callable[[int, int], None]


class ImportFileError(Invalid):
    """The whole file cannot be imported (encoding, missing name column, bad mapping)."""


def check_segment(code: str) -> str:
    """One of the four CCAS segments or a custom code such as `plan_canicule_2025`."""
    value = (code or "").strip()
    if value in SEGMENTS or SEGMENT_CODE.match(value):
        return value
    raise Invalid(
        f"Segment invalide « {code} » : attendu {', '.join(SEGMENTS)} ou un code personnalisé "
        "en minuscules (lettres, chiffres, « _ », 2 à 40 caractères, commençant par une lettre)",
        code="invalid_segment",
    )


def parse_mapping(items: list[str]) -> dict[str, str]:
    """`COLUMN=FIELD` pairs, as `--map` and the API's `map` fields give them."""
    mapping: dict[str, str] = {}
    for item in items:
        column, sep, target = item.rpartition("=")
        if not sep or not column.strip() or not target.strip():
            raise Invalid(f"Correspondance « {item} » : attendu COLONNE=champ", code="bad_mapping")
        mapping[column.strip()] = target.strip()
    return mapping


@dataclass
class ImportReport:
    """What an import did (or, in a dry run, would do), row by row where it matters."""

    segment: str
    filename: str
    encoding: str
    delimiter: str
    columns: dict[str, str]
    rows: int
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    memberships_added: int = 0
    rejected: list[RowIssue] = field(default_factory=list)
    warnings: list[RowIssue] = field(default_factory=list)
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of DESIGN.md, shared by `campaigns import --json` and the API."""
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": [
                {"line": i.line, "reason": i.reason, "detail": i.detail} for i in self.rejected
            ],
            "warnings": [
                {"line": i.line, "reason": i.reason, "detail": i.detail} for i in self.warnings
            ],
            "segment": self.segment,
            "filename": self.filename,
            "encoding": self.encoding,
            "rows": self.rows,
            "memberships_added": self.memberships_added,
            "dry_run": self.dry_run,
        }


@dataclass
class _Plan:
    """The writes an import needs, decided before anything is written."""

    creates: list[PlannedRow] = field(default_factory=list)
    # person id -> changed fields (values), for people already held.
    updates: dict[int, dict[str, Any]] = field(default_factory=dict)
    matched: list[tuple[RegisterRow, int]] = field(default_factory=list)


def _address(extra: dict[str, Any]) -> str | None:
    street = extra.get("address")
    town = " ".join(str(extra[k]) for k in ("postal_code", "city") if extra.get(k))
    text = ", ".join(part for part in (street, town) if part)
    return text or None


def _row_values(row: RegisterRow) -> dict[str, Any]:
    return {
        "civility": row.civility,
        "last_name": row.last_name,
        "first_name": row.first_name,
        "birth_date": row.birth_date,
        "mobile": row.mobile.e164 if row.mobile else None,
        "landline": row.landline.e164 if row.landline else None,
        "email": row.email,
        "address": _address(row.extra),
        "district": row.district,
        "referent_email": row.referent_email,
    }


def _too_long(row: RegisterRow, values: dict[str, Any]) -> RowIssue | None:
    checked = {**values, "external_ref": row.external_ref}
    for name, limit in MAX_LENGTHS.items():
        value = checked.get(name)
        if isinstance(value, str) and len(value) > limit:
            return RowIssue(
                row.line, "value_too_long", f"Champ {name} trop long ({len(value)} > {limit})"
            )
    return None


def _same_name(name: str, existing: dict[str, Any], value: Any) -> bool:
    # "MARTIN" in one register and "Martin" in another are one spelling: writing each in
    # turn would report every shared person as updated on every import.
    if name not in ("last_name", "first_name") or not existing[name]:
        return False
    return normalize_header(existing[name]) == normalize_header(value)


def _changes(existing: dict[str, Any], values: dict[str, Any], ref: str | None) -> dict[str, Any]:
    changed = {
        name: value
        for name, value in values.items()
        if value not in (None, "")
        and existing[name] != value
        and not _same_name(name, existing, value)
    }
    if ref and not existing["external_ref"]:
        changed["external_ref"] = ref
    if changed:
        merged = {**existing, **changed}
        key = identity_key(merged["last_name"], merged["first_name"], merged["birth_date"])
        if key != existing["identity_key"]:
            changed["identity_key"] = key
    return changed


def _registered_by(text: str) -> str:
    folded = text.casefold()
    if any(word in folded for word in ("lui", "elle", "même", "meme", "personne", "self")):
        return "self"
    if any(word in folded for word in ("représentant", "representant", "tuteur", "curateur")):
        return "representative"
    if any(word in folded for word in ("tiers", "famille", "médecin", "medecin", "service")):
        return "third_party"
    return text[: FRAGILE_LENGTHS["registered_by"]]


def _fragile_values(row: RegisterRow) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in FRAGILE_FIELDS:
        value = row.extra.get(name)
        if value in (None, ""):
            continue
        if name == "registered_by":
            value = _registered_by(str(value))
        elif name in FRAGILE_LENGTHS:
            value = str(value)[: FRAGILE_LENGTHS[name]]
        values[name] = value
    return values


DATE_COLUMNS = frozenset(("birth_date", "acknowledged_on", "next_review_on"))


async def _select_in(
    conn: BaseDBAsyncClient,
    table: str,
    columns: Sequence[str],
    key: str,
    keys: Sequence[Any],
    *,
    key_type: str = "text",
    segment: str | None = None,
) -> list[dict[str, Any]]:
    """Rows whose `key` is among `keys`, read in large chunks without building ORM objects."""
    found: list[dict[str, Any]] = []
    names = ", ".join(f'"{c}"' for c in columns)
    postgres = on_postgres(conn)
    size = LOOKUP_CHUNK * 10 if postgres else LOOKUP_CHUNK
    for chunk in chunks(list(keys), size):
        params: list[Any]
        if postgres:
            where, params = f'"{key}" = ANY($1::{key_type}[])', [list(chunk)]
            if segment is not None:
                where += ' AND "segment" = $2'
        else:
            where, params = f'"{key}" IN ({", ".join("?" for _ in chunk)})', list(chunk)
            if segment is not None:
                where += ' AND "segment" = ?'
        if segment is not None:
            params.append(segment)
        rows = await conn.execute_query_dict(
            f'SELECT {names} FROM "{table}" WHERE {where} ORDER BY "id"', params
        )
        found += [dict(row) for row in rows]
    if not postgres:
        # SQLite hands dates back as ISO text: compare them as dates.
        for row in found:
            for name in DATE_COLUMNS.intersection(row):
                if isinstance(row[name], str):
                    row[name] = date.fromisoformat(row[name])
    return found


async def _existing(conn: BaseDBAsyncClient, column: str, keys: list[str]) -> list[dict[str, Any]]:
    fields = ("id", "external_ref", "identity_key", *PERSON_FIELDS)
    return await _select_in(conn, "person", fields, column, keys)


async def _plan(
    conn: BaseDBAsyncClient,
    rows: list[PlannedRow],
    progress: Callable[[int], None],
) -> _Plan:
    """Match each row to a person held (same file number, else same names and birth date)."""
    plan = _Plan()
    refs = [r.source.external_ref for r in rows if r.source.external_ref]
    by_ref = {p["external_ref"]: p for p in await _existing(conn, "external_ref", refs)}
    progress(len(rows) // 4)
    keys = list({r.key for r in rows if r.source.external_ref not in by_ref})
    by_key: dict[str, list[dict[str, Any]]] = {}
    for found in await _existing(conn, "identity_key", keys):
        by_key.setdefault(found["identity_key"], []).append(found)
    progress(len(rows) // 2)
    claimed: set[int] = set()
    for r in rows:
        ref = r.source.external_ref
        person = by_ref.get(ref) if ref else None
        if person is None:
            # Two rows of one file never land on the same person: the parser has already
            # decided they are two dossiers.
            person = next((p for p in by_key.get(r.key, ()) if p["id"] not in claimed), None)
        if person is None or person["id"] in claimed:
            plan.creates.append(r)
            continue
        claimed.add(person["id"])
        plan.matched.append((r.source, person["id"]))
        changed = _changes(person, r.values, ref)
        if changed:
            plan.updates[person["id"]] = changed
    return plan


async def _memberships(
    conn: BaseDBAsyncClient,
    segment: str,
    people: list[tuple[RegisterRow, int]],
) -> tuple[dict[int, dict[str, Any]], dict[int, tuple[int, dict[str, Any]]]]:
    """Memberships to add, and fragile-field changes (membership id, values), by person id."""
    held: dict[int, dict[str, Any]] = {}
    for row_held in await _select_in(
        conn,
        "membership",
        ("id", "person_id", *FRAGILE_FIELDS),
        "person_id",
        [pid for _, pid in people],
        key_type="int",
        segment=segment,
    ):
        held[row_held["person_id"]] = row_held
    to_add: dict[int, dict[str, Any]] = {}
    to_change: dict[int, tuple[int, dict[str, Any]]] = {}
    for row, person_id in people:
        fragile = _fragile_values(row) if segment == FRAGILE else {}
        membership = held.get(person_id)
        if membership is None:
            to_add[person_id] = fragile
            continue
        changed = {k: v for k, v in fragile.items() if membership[k] != v}
        if changed:
            to_change[person_id] = (membership["id"], changed)
    return to_add, to_change


def _file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


async def _parse(data: bytes, region: str, mapping_overrides: dict[str, str] | None) -> Any:
    try:
        # A 100,000-row file takes seconds to parse: keep the event loop serving meanwhile.
        return await asyncio.to_thread(
            parse_register, data, default_region=region, mapping_overrides=mapping_overrides
        )
    except RegisterFileError as error:
        raise ImportFileError(error.message, code=error.code) from None


async def import_register(
    data: bytes,
    *,
    segment: str,
    actor: Actor,
    filename: str,
    mapping_overrides: dict[str, str] | None = None,
    dry_run: bool = False,
    region: str = "FR",
    progress: Progress | None = None,
) -> ImportReport:
    """Import one register file into a segment: one transaction, one audit event."""
    segment = check_segment(segment)
    parsed: ParsedRegister = await _parse(data, region, mapping_overrides)
    report = ImportReport(
        segment=segment,
        filename=filename,
        encoding=parsed.encoding,
        delimiter=parsed.delimiter,
        columns=parsed.columns,
        rows=len(parsed.rows) + len(parsed.rejected),
        warnings=list(parsed.warnings),
        dry_run=dry_run,
    )
    rejected = list(parsed.rejected)
    rows: list[PlannedRow] = []
    for row in parsed.rows:
        values = _row_values(row)
        problem = _too_long(row, values)
        if problem is None:
            rows.append(
                PlannedRow(row, values, identity_key(row.last_name, row.first_name, row.birth_date))
            )
        else:
            rejected.append(problem)
    report.rejected = sorted(rejected, key=lambda issue: issue.line)
    total = max(len(rows), 1) * 2

    def advance(done: int) -> None:
        if progress is not None:
            progress(min(done, total), total)

    advance(0)
    async with in_transaction() as conn:
        if on_postgres(conn):
            await conn.execute_query("SELECT pg_advisory_xact_lock($1)", [IMPORT_LOCK])
        plan = await _plan(conn, rows, advance)
        to_add, to_change = await _memberships(conn, segment, plan.matched)
        touched = set(plan.updates) | set(to_add) | set(to_change)
        report.created = len(plan.creates)
        report.updated = len(touched)
        report.unchanged = len(plan.matched) - len(touched)
        report.memberships_added = len(to_add) + len(plan.creates)
        advance(len(rows))
        if not dry_run:
            created = await create_people(conn, plan.creates)
            advance(len(rows) + len(rows) // 2)
            await update_people(conn, plan.updates)
            for row, person_id in created:
                to_add[person_id] = _fragile_values(row) if segment == FRAGILE else {}
            await write_memberships(conn, segment, filename, to_add, to_change)
            await audit.record(
                actor,
                "register.import",
                "segment",
                segment,
                rows=report.rows,
                created=report.created,
                updated=report.updated,
                unchanged=report.unchanged,
                rejected=len(report.rejected),
                warnings=len(report.warnings),
                memberships_added=report.memberships_added,
                encoding=report.encoding,
                file_sha256=_file_digest(data),
            )
    connection = Tortoise.get_connection("default")
    if not dry_run and on_postgres(connection) and report.memberships_added >= ANALYZE_AFTER:
        # Fresh statistics, or the next import's lookups are planned as if on an empty
        # table, and a set visibility map, or audience counts cannot use index-only scans
        # until autovacuum passes. VACUUM refuses to run inside a transaction: one each.
        for table in ("person", "membership"):
            await connection.execute_script(f"VACUUM (ANALYZE) {table}")
    advance(total)
    return report

"""HTTP route for importing a register file (multipart upload) into a segment."""

from __future__ import annotations

from aiohttp import BodyPartReader, web
from pydantic import BaseModel

from campaigns.core.errors import Invalid
from campaigns.registry.importer import import_register, parse_mapping
from campaigns.staff import MANAGERS, actor_for
from campaigns.web.http import ApiRouter, current_staff, json_response

router = ApiRouter("imports")
MAX_FILE = 40 * 1024 * 1024
TRUE = {"1", "true", "yes", "on", "oui"}


class RowIssueOut(BaseModel):
    line: int
    reason: str
    detail: str


class ImportReportOut(BaseModel):
    created: int
    updated: int
    unchanged: int
    rejected: list[RowIssueOut]
    warnings: list[RowIssueOut]
    segment: str
    filename: str
    encoding: str
    rows: int
    memberships_added: int
    dry_run: bool


async def _read_form(request: web.Request) -> tuple[bytes, str, dict[str, list[str]]]:
    if not request.content_type.startswith("multipart/"):
        raise Invalid("Envoyez le fichier en multipart/form-data (champ « file »)", code="bad_form")
    reader = await request.multipart()
    data: bytes | None = None
    filename = "import.csv"
    fields: dict[str, list[str]] = {}
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "file":
            filename = part.filename or filename
            data = bytes(await part.read())
            if len(data) > MAX_FILE:
                raise Invalid("Fichier trop volumineux (40 Mo au plus)", code="too_large")
        elif part.name:
            fields.setdefault(part.name, []).append(await part.text())
    if data is None:
        raise Invalid("Aucun fichier reçu (champ « file »)", code="missing_file")
    return data, filename, fields


@router.route(
    "POST",
    "/api/v1/imports",
    summary="Importer un registre CSV dans un segment (champs file, segment, dry_run, map)",
    roles=MANAGERS,
    response=ImportReportOut,
    content_type="multipart/form-data",
)
async def create_import(request: web.Request) -> web.Response:
    data, filename, fields = await _read_form(request)
    segment = (fields.get("segment") or [""])[0]
    if not segment:
        raise Invalid("Le segment est obligatoire (champ « segment »)", code="missing_segment")
    dry_run = (fields.get("dry_run") or ["false"])[0].strip().lower() in TRUE
    report = await import_register(
        data,
        segment=segment,
        actor=actor_for(current_staff(request)),
        filename=filename,
        mapping_overrides=parse_mapping(fields.get("map", [])) or None,
        dry_run=dry_run,
    )
    return json_response(report.as_dict())

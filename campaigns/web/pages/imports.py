"""Imports: upload a register into a segment, follow the import, read and download its report."""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from campaigns.core.csv_cells import safe_row
from campaigns.core.errors import DomainError
from campaigns.models.registry import SEGMENTS
from campaigns.registry import queries as registry_queries
from campaigns.registry.importer import check_segment, import_register
from campaigns.registry.register_issues import REASONS
from campaigns.staff import MANAGERS
from campaigns.web.pages import helpers as h
from campaigns.web.pages.base import PageRouter

log = logging.getLogger(__name__)
router = PageRouter()
MAX_FILE = 40 * 1024 * 1024
# Reports stay in this process's memory for a while: enough to read and download them.
KEEP_JOBS = 50


@dataclass
class ImportJob:
    """One import running (or finished) in the background of this web process."""

    id: str
    staff_id: int
    filename: str
    segment: str
    dry_run: bool
    state: str = "running"  # running, done, failed
    done: int = 0
    total: int = 1
    report: dict[str, Any] | None = None
    error: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def percent(self) -> int:
        if self.state != "running":
            return 100
        return min(99, round(100 * self.done / max(self.total, 1)))


_JOBS: OrderedDict[str, ImportJob] = OrderedDict()


def _remember(job: ImportJob) -> None:
    _JOBS[job.id] = job
    while len(_JOBS) > KEEP_JOBS:
        oldest = next(iter(_JOBS))
        if _JOBS[oldest].state == "running":
            break
        _JOBS.pop(oldest)


def _job(request: web.Request) -> ImportJob:
    job = _JOBS.get(request.match_info["job"])
    if job is None:
        raise web.HTTPNotFound(reason="Import introuvable (terminé depuis longtemps ?)")
    return job


async def _run(job: ImportJob, data: bytes, actor: Any) -> None:
    def progress(done: int, total: int) -> None:
        job.done, job.total = done, max(total, 1)

    try:
        report = await import_register(
            data,
            segment=job.segment,
            actor=actor,
            filename=job.filename,
            dry_run=job.dry_run,
            progress=progress,
        )
        job.report = report.as_dict()
        job.state = "done"
    except DomainError as exc:
        job.error, job.state = exc.detail, "failed"
    except Exception:
        log.exception("import job %s failed", job.id)
        job.error, job.state = "Erreur interne pendant l'import.", "failed"


async def _form_context(error: str | None = None, segment: str = "") -> dict[str, Any]:
    return {
        "error": error,
        "segment": segment,
        "segments": [{"code": c, "label": h.SEGMENT_LABELS[c]} for c in SEGMENTS],
        "recent": await registry_queries.recent_imports(10),
        "segment_labels": h.SEGMENT_LABELS,
        "jobs": [j for j in reversed(_JOBS.values())][:10],
    }


@router.page("GET", "/imports", MANAGERS, "imports.html")
async def imports_page(request: web.Request) -> dict[str, Any]:
    return await _form_context()


async def _read_upload(request: web.Request) -> tuple[bytes | None, str, dict[str, str]]:
    # The CSRF check has already parsed the form (aiohttp caches it): read it from there.
    form = await request.post()
    upload = form.get("file")
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    if not isinstance(upload, web.FileField):
        return None, "registre.csv", fields
    return upload.file.read(), upload.filename or "registre.csv", fields


@router.page("POST", "/imports", MANAGERS, "imports.html")
async def start_import(request: web.Request) -> web.StreamResponse | dict[str, Any]:
    if not request.content_type.startswith("multipart/"):
        return await _form_context("Choisissez un fichier CSV à importer.")
    data, filename, fields = await _read_upload(request)
    segment = (fields.get("custom_segment") or fields.get("segment") or "").strip()
    try:
        segment = check_segment(segment)
    except DomainError as exc:
        return await _form_context(exc.detail, segment)
    if not data:
        return await _form_context("Le fichier est vide ou absent.", segment)
    if len(data) > MAX_FILE:
        return await _form_context("Fichier trop volumineux (40 Mo au plus).", segment)
    staff = h.staff_of(request)
    job = ImportJob(
        id=secrets.token_urlsafe(9),
        staff_id=staff.id,
        filename=filename[:200],
        segment=segment,
        dry_run=fields.get("dry_run") == "oui",
    )
    _remember(job)
    job.task = asyncio.create_task(_run(job, data, h.actor(request)))
    raise web.HTTPSeeOther(f"/imports/{job.id}")


# The encodings the register reader reports, as a CCAS user knows them.
ENCODING_LABELS = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8 (export Excel « CSV UTF-8 »)",
    "cp1252": "Windows (ANSI, export Excel « CSV séparateur point-virgule »)",
    "windows-1252": "Windows (ANSI, export Excel « CSV séparateur point-virgule »)",
    "utf-16": "Unicode (export Excel « Texte Unicode »)",
}


def issue_groups(issues: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issues grouped by reason, the most frequent first, each with its French label.

    A register of thousands of lines may carry hundreds of identical warnings: the page
    shows one line per reason with its count, the lines themselves folded under it.
    """
    groups: dict[str, dict[str, Any]] = {}
    for issue in issues:
        reason = str(issue.get("reason", ""))
        group = groups.setdefault(
            reason,
            {"reason": reason, "label": REASONS.get(reason, "Autre motif"), "items": []},
        )
        group["items"].append(issue)
    ordered = sorted(groups.values(), key=lambda g: (-len(g["items"]), g["label"]))
    for group in ordered:
        group["count"] = len(group["items"])
    return ordered


@router.page("GET", "/imports/{job}", MANAGERS, "import_job.html")
async def import_job_page(request: web.Request) -> dict[str, Any]:
    job = _job(request)
    report = job.report or {}
    encoding = str(report.get("encoding") or "")
    return {
        "job": job,
        "report": job.report,
        "rejected_groups": issue_groups(report.get("rejected", [])),
        "warning_groups": issue_groups(report.get("warnings", [])),
        "encoding_label": ENCODING_LABELS.get(encoding.lower(), encoding or "—"),
        "segment_labels": h.SEGMENT_LABELS,
    }


@router.page("GET", "/imports/{job}/etat", MANAGERS)
async def import_job_state(request: web.Request) -> web.StreamResponse:
    job = _job(request)
    return web.json_response(
        {"state": job.state, "percent": job.percent, "done": job.done, "total": job.total}
    )


def report_csv(report: dict[str, Any]) -> str:
    """The rejected rows and warnings, one per line, as a French spreadsheet opens them."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(["type", "ligne", "motif", "détail", "code"])
    for kind, key in (("rejet", "rejected"), ("avertissement", "warnings")):
        for issue in report.get(key, []):
            label = REASONS.get(issue["reason"], issue["reason"])
            writer.writerow(
                safe_row([kind, issue["line"], label, issue.get("detail", ""), issue["reason"]])
            )
    return buffer.getvalue()


@router.page("GET", "/imports/{job}/rapport.csv", MANAGERS)
async def import_report_csv(request: web.Request) -> web.StreamResponse:
    job = _job(request)
    if job.report is None:
        raise web.HTTPConflict(reason="L'import n'est pas terminé")
    # A BOM so that spreadsheet software reads the accents as UTF-8.
    body = "\ufeff" + report_csv(job.report)
    return web.Response(
        body=body.encode("utf-8"),
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="rapport-import-{job.id}.csv"',
        },
    )

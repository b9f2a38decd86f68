"""Message templates in the database: checked on save, versioned on edit, seeded with defaults."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from tortoise.transactions import in_transaction

from campaigns.core import audit
from campaigns.core.audit import Actor
from campaigns.core.errors import Invalid, NotFound
from campaigns.core.settings import Settings
from campaigns.messages.rendering import (
    CampaignVars,
    CcasVars,
    PersonVars,
    TemplateError,
    TemplateVars,
    check_template,
    load_default_templates,
    render_email,
    render_sms,
    render_sms_text,
    sample_campaign,
    sample_person,
)
from campaigns.models import Template, TemplateVersion

# "appel": a caller's script, read by staff and never sent to the person.
CHANNELS = ("sms", "email", "appel")


@dataclass(frozen=True)
class TemplateContent:
    """What a version holds; two versions with the same content are the same text."""

    body: str
    subject: str | None = None
    body_html: str | None = None
    fold_accents: bool = False


def template_error(exc: TemplateError) -> Invalid:
    """The 422 a coordinator sees, with the renderer's code (`syntax`, `undefined_variable`...)."""
    return Invalid(exc.message, code=exc.code)


def check_content(channel: str, content: TemplateContent) -> TemplateContent:
    """Refuse an unusable template before it is stored; returns the content as it will be kept."""
    if channel not in CHANNELS:
        raise Invalid(
            "Canal inconnu : « sms », « email » ou « appel » attendu.", code="bad_channel"
        )
    if channel == "email":
        if not (content.subject or "").strip():
            raise Invalid("Un e-mail doit avoir un objet.", code="missing_subject")
        subject, body_html, fold = content.subject, content.body_html, False
    else:
        # An SMS or a script has neither subject nor HTML part; folding is for SMS only.
        subject, body_html = None, None
        fold = content.fold_accents and channel == "sms"
    try:
        check_template(content.body, subject, body_html=body_html)
    except TemplateError as exc:
        raise template_error(exc) from None
    return TemplateContent(content.body, subject, body_html, fold)


async def create_template(
    name: str, channel: str, content: TemplateContent, *, actor: Actor
) -> Template:
    """Store a new template and its version 1."""
    name = _clean_name(name)
    content = check_content(channel, content)
    async with in_transaction():
        template = await Template.create(name=name, channel=channel, current_version=1)
        await _add_version(template, 1, content, actor)
    await audit.record(actor, "template.create", "template", template.id, channel=channel)
    return template


async def update_template(
    template_id: int, content: TemplateContent, *, actor: Actor, name: str | None = None
) -> Template:
    """Store the edited text as a new version; campaigns keep pointing at the version they used."""
    template = await _get(template_id)
    content = check_content(template.channel, content)
    current = await TemplateVersion.get(template=template, version=template.current_version)
    async with in_transaction():
        if name is not None:
            template.name = _clean_name(name)
        if _content_of(current) != content:
            template.current_version += 1
            await _add_version(template, template.current_version, content, actor)
        await template.save()
    await audit.record(
        actor, "template.update", "template", template.id, version=template.current_version
    )
    return template


async def current_version(template: Template) -> TemplateVersion:
    return await TemplateVersion.get(template=template, version=template.current_version)


async def list_templates(channel: str | None = None) -> list[dict[str, Any]]:
    query = Template.all().order_by("channel", "name", "id")
    if channel:
        query = query.filter(channel=channel)
    templates = await query
    versions = {
        (v.template_id, v.version): v  # type: ignore[attr-defined]
        for v in await TemplateVersion.filter(template_id__in=[t.id for t in templates])
    }
    return [
        _describe(t, versions.get((t.id, t.current_version)))
        for t in templates
        if (t.id, t.current_version) in versions
    ]


async def get_template(template_id: int) -> dict[str, Any]:
    """The template with its current text and the list of its versions, newest first."""
    template = await _get(template_id)
    versions = await TemplateVersion.filter(template=template).order_by("-version")
    current = next(v for v in versions if v.version == template.current_version)
    data = _describe(template, current)
    data["versions"] = [
        {
            "id": v.id,
            "version": v.version,
            "created_at": v.created_at.isoformat(),
            "created_by_id": v.created_by_id,
        }
        for v in versions
    ]
    return data


async def seed_default_templates() -> int:
    """Add the shipped French templates that are not in the database yet; returns how many.

    Idempotent: a default is recognised by its name and channel, so a coordinator's
    edits (new versions of it) are kept, and running it again adds nothing.
    """
    existing = set(await Template.all().values_list("name", "channel"))
    added = 0
    for default in load_default_templates():
        if (default.name, default.channel) in existing:
            continue
        content = TemplateContent(default.body, default.subject, default.body_html)
        async with in_transaction():
            template = await Template.create(
                name=default.name, channel=default.channel, current_version=1
            )
            await _add_version(template, 1, content, None)
        added += 1
    if added:
        await audit.record(Actor.system(), "template.seed", "template", None, count=added)
    return added


# --- rendering for one person ---------------------------------------------------------------


def ccas_vars(settings: Settings, hotline: str | None = None) -> CcasVars:
    """The CCAS as the configuration describes it; a campaign may name another hotline."""
    return CcasVars(
        name=settings.ccas_name, hotline=hotline or settings.ccas_hotline, hours=settings.ccas_hours
    )


def person_vars(civility: str | None, first_name: str | None, last_name: str | None) -> PersonVars:
    return PersonVars(
        civility=civility or "", first_name=first_name or "", last_name=last_name or ""
    )


def preview(
    channel: str,
    content: TemplateContent,
    settings: Settings,
    *,
    person: PersonVars | None = None,
    campaign: CampaignVars | None = None,
    unsubscribe_url: str | None = None,
) -> dict[str, Any]:
    """What one recipient would get, with what it costs for an SMS; TemplateError -> 422."""
    content = check_content(channel, content)
    variables = TemplateVars(
        person=person or sample_person(),
        ccas=ccas_vars(settings),
        campaign=campaign or sample_campaign(),
    )
    try:
        if channel == "sms":
            sms = render_sms(
                content.body,
                variables,
                optout_mention=settings.sms_optout_mention,
                fold=content.fold_accents,
            )
            return {
                "channel": "sms",
                "text": sms.text,
                "encoding": sms.encoding,
                "segments": sms.segments,
                "parts": list(sms.parts),
                "units": sms.units,
                "ucs2_chars": list(sms.ucs2_chars),
                "normalised": sms.normalised,
                "folded": sms.folded,
                "optout_mention": settings.sms_optout_mention,
            }
        if channel == "appel":
            script = render_sms_text(content.body, variables, optout_mention=None)
            return {
                "channel": "appel",
                "text": script,
                "encoding": None,
                "segments": 0,  # read by a caller: no SMS part, no cost
                "parts": [script],
                "units": len(script),
                "ucs2_chars": [],
                "normalised": False,
                "folded": False,
                "optout_mention": None,
            }
        url = unsubscribe_url or f"{settings.public_url.rstrip('/')}/desabonnement/exemple"
        email = render_email(content.subject or "", content.body, content.body_html, variables, url)
    except TemplateError as exc:
        raise template_error(exc) from None
    return {
        "channel": "email",
        "subject": email.subject,
        "text": email.text,
        "html": email.html,
        "encoding": None,
        "segments": 1,
        "parts": [email.text],
        "units": len(email.text),
        "ucs2_chars": [],
        "normalised": False,
        "folded": False,
        "optout_mention": None,
    }


# A preview renders text typed by a coordinator: off the event loop, with a time limit, so
# that even a template the static checks let through can never hold the server.
PREVIEW_SECONDS = 2.0


async def preview_off_loop(
    channel: str,
    content: TemplateContent,
    settings: Settings,
    *,
    person: PersonVars | None = None,
    limit: float = PREVIEW_SECONDS,
) -> dict[str, Any]:
    """`preview` in a worker thread, refused with a French 422 past `limit` seconds."""
    try:
        return await asyncio.wait_for(
            asyncio.to_thread(preview, channel, content, settings, person=person), limit
        )
    except TimeoutError:
        raise Invalid(
            "Le modèle met trop de temps à s'afficher : simplifiez-le.", code="too_slow"
        ) from None


def describe_version(version: TemplateVersion) -> dict[str, Any]:
    return {
        "version_id": version.id,
        "version": version.version,
        "subject": version.subject,
        "body": version.body,
        "body_html": version.body_html,
        "fold_accents": version.fold_accents,
    }


def _describe(template: Template, version: TemplateVersion | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": template.id,
        "name": template.name,
        "channel": template.channel,
        "current_version": template.current_version,
        "updated_at": template.updated_at.isoformat(),
    }
    if version is not None:
        data.update(describe_version(version))
    return data


def _content_of(version: TemplateVersion) -> TemplateContent:
    return TemplateContent(version.body, version.subject, version.body_html, version.fold_accents)


async def _add_version(
    template: Template, number: int, content: TemplateContent, actor: Actor | None
) -> TemplateVersion:
    return await TemplateVersion.create(
        template=template,
        version=number,
        subject=content.subject,
        body=content.body,
        body_html=content.body_html,
        fold_accents=content.fold_accents,
        created_by_id=actor.id if actor else None,
    )


async def _get(template_id: int) -> Template:
    template = await Template.get_or_none(id=template_id)
    if template is None:
        raise NotFound(f"Modèle {template_id} introuvable")
    return template


def _clean_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise Invalid("Le modèle doit avoir un nom.", code="missing_name")
    if len(name) > 200:
        raise Invalid("Le nom du modèle dépasse 200 caractères.", code="name_too_long")
    return name

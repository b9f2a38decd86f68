"""Campagnes: create, confirm a launch (recipients, skipped, parts, cost), follow, pause, cancel."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from campaigns.campaign import launch as launching
from campaigns.campaign import lifecycle as service
from campaigns.campaign import preview
from campaigns.campaign import queries as campaign_queries
from campaigns.campaign import reports as campaign_reports
from campaigns.campaign.progress import campaign_state, progress_percent
from campaigns.core.errors import DomainError
from campaigns.core.settings import Settings
from campaigns.dispatch import settle
from campaigns.messages import template_store as store
from campaigns.registry import audiences
from campaigns.staff import MANAGERS
from campaigns.web.keys import RUNTIME
from campaigns.web.pages import helpers as h
from campaigns.web.pages.base import PageRouter, euros_fr, number_fr, percent_fr
from campaigns.web.pages.funnel import funnel_steps, funnel_svg

router = PageRouter()


def _campaign_id(request: web.Request) -> int:
    value = h.int_or_none(request.match_info["id"])
    if value is None:
        raise web.HTTPNotFound()
    return value


@router.page("GET", "/campagnes", MANAGERS, "campaigns_list.html")
async def campaigns_list(request: web.Request) -> dict[str, Any]:
    items = await campaign_reports.list_campaigns()
    for item in items:
        item["progress_percent"] = progress_percent(item["counts"], item["status"])
    return {"campaigns": items, "channel_labels": h.CHANNEL_LABELS}


async def _new_context(
    request: web.Request, values: dict[str, Any], error: str | None = None
) -> dict[str, Any]:
    await store.seed_default_templates()
    settings = request.app[RUNTIME].settings
    return {
        "templates": await store.list_templates(),
        "audiences": await audiences.list_audiences(),
        "values": values,
        "error": error,
        "default_sender": settings.sms_sender,
        "channel_labels": h.CHANNEL_LABELS,
    }


@router.page("GET", "/campagnes/nouvelle", MANAGERS, "campaign_new.html")
async def campaign_new(request: web.Request) -> dict[str, Any]:
    values = {
        "name": "",
        "template_id": h.int_or_none(request.query.get("modele")),
        "audience_id": h.int_or_none(request.query.get("public")),
        "sender": "",
        "hotline": "",
        "scheduled_at": "",
        "recurrence_days": "",
        "expects_replies": True,
    }
    return await _new_context(request, values)


@router.page("POST", "/campagnes", MANAGERS, "campaign_new.html")
async def campaign_create(request: web.Request) -> web.StreamResponse | dict[str, Any]:
    form = await h.form_data(request)
    values: dict[str, Any] = {
        "name": h.text(form, "name"),
        "template_id": h.int_or_none(h.text(form, "template_id")),
        "audience_id": h.int_or_none(h.text(form, "audience_id")),
        "sender": h.text(form, "sender"),
        "hotline": h.text(form, "hotline"),
        "scheduled_at": h.text(form, "scheduled_at"),
        "recurrence_days": h.text(form, "recurrence_days"),
        "expects_replies": form.get("expects_replies") == "oui",
    }
    runtime = request.app[RUNTIME]
    try:
        if values["template_id"] is None or values["audience_id"] is None:
            raise DomainError("Choisissez un modèle et un public.")
        template = await store.get_template(values["template_id"])
        raw_date = values["scheduled_at"]
        scheduled = datetime.fromisoformat(raw_date) if raw_date else None
        campaign = await service.create_campaign(
            name=values["name"],
            channel=template["channel"],
            template_id=values["template_id"],
            audience_id=values["audience_id"],
            actor=h.actor(request),
            settings=runtime.settings,
            now=runtime.clock(),
            sender=values["sender"] or None,
            hotline=values["hotline"] or None,
            scheduled_at=scheduled,
            recurrence_days=h.int_or_none(values["recurrence_days"]),
            expects_replies=values["expects_replies"],
        )
    except ValueError:
        return await _new_context(request, values, "Date d'envoi invalide.")
    except DomainError as exc:
        return await _new_context(request, values, exc.detail)
    raise web.HTTPSeeOther(f"/campagnes/{campaign.id}/lancement")


@router.page("GET", "/campagnes/{id}/lancement", MANAGERS, "campaign_launch.html")
async def campaign_launch_confirm(request: web.Request) -> web.StreamResponse | dict[str, Any]:
    campaign_id = _campaign_id(request)
    runtime = request.app[RUNTIME]
    campaign = await service.get_campaign(campaign_id)
    try:
        plan = await launching.preview_launch(campaign_id, runtime)
        samples = await preview.launch_samples(
            campaign_id, runtime.settings, runtime.clock(), actor=h.actor(request)
        )
        blockers = await preview.launch_blockers(campaign_id, runtime.settings)
    except DomainError as exc:
        await h.flash(request, exc.detail, "error")
        raise web.HTTPSeeOther(f"/campagnes/{campaign_id}") from None
    version = await campaign_queries.template_version_of(campaign)
    return {
        "campaign": campaign_reports.describe_campaign(campaign),
        "plan": plan,
        "samples": [s.as_dict() for s in samples],
        "blockers": blockers,
        "encodings_explained": preview.ENCODING_EXPLAINED,
        "price_per_part": campaign.price_per_part,
        "version": version,
        "skip_labels": h.SKIP_REASON_LABELS,
        "channel_labels": h.CHANNEL_LABELS,
    }


@router.page("POST", "/campagnes/{id}/lancer", MANAGERS)
async def campaign_launch(request: web.Request) -> web.StreamResponse:
    campaign_id = _campaign_id(request)
    form = await h.form_data(request)
    if form.get("confirmer") != "oui":
        await h.flash(request, "Cochez la confirmation pour lancer la campagne.", "error")
        raise web.HTTPSeeOther(f"/campagnes/{campaign_id}/lancement")
    runtime = request.app[RUNTIME]
    try:
        blockers = await preview.launch_blockers(campaign_id, runtime.settings)
        if blockers:
            # A placeholder number sent to thousands cannot be taken back: refused here.
            await h.flash(request, "Lancement refusé. " + " ".join(blockers), "error")
            raise web.HTTPSeeOther(f"/campagnes/{campaign_id}/lancement")
        result = await launching.launch(campaign_id, actor=h.actor(request), runtime=runtime)
    except DomainError as exc:
        await h.flash(request, exc.detail, "error")
        raise web.HTTPSeeOther(f"/campagnes/{campaign_id}/lancement") from None
    done = "programmée" if result["status"] == "scheduled" else "lancée"
    await h.flash(request, f"Campagne {done}.")
    raise web.HTTPSeeOther(f"/campagnes/{campaign_id}")


def live_figures(state: dict[str, Any], settings: Settings) -> dict[str, str]:
    """The figures that move while a campaign sends, as the page prints them (French formats).

    The console providers send nothing, so no delivery receipt can ever come: a rate of
    0 % would look like a failure, the page says why there is none instead.
    """
    provider = settings.sms_provider if state["channel"] == "sms" else settings.email_provider
    rate = state.get("delivery_rate")
    if provider == "console":
        delivery = "sans accusé de réception (mode console)"
    else:
        delivery = percent_fr(rate) if rate is not None else "—"
    return {
        "recipients": number_fr(state["recipients"]),
        "parts_sent": number_fr(state["parts_sent"]),
        "cost_estimate": euros_fr(state["cost_estimate"]["total"]),
        "cost_actual": euros_fr(state["cost_actual"]),
        "delivery": delivery,
    }


async def _state(request: web.Request) -> dict[str, Any]:
    runtime = request.app[RUNTIME]
    # The runtime's clock, not the machine's: the send window is judged on the service's time.
    now = runtime.clock()
    state = await campaign_state(_campaign_id(request), runtime.settings, now)
    state["figures"] = live_figures(state, runtime.settings)
    return state


@router.page("GET", "/campagnes/{id}", MANAGERS, "campaign.html")
async def campaign_page(request: web.Request) -> dict[str, Any]:
    state = await _state(request)
    failures = await campaign_queries.recent_failures(state["id"], limit=100)
    reasons: dict[str, int] = {}
    for message in failures:
        key = message.error or h.MESSAGE_STATUS_LABELS[message.status.value]
        reasons[key] = reasons.get(key, 0) + 1
    return {
        "c": state,
        "funnel_svg": funnel_svg(state["funnel"]),
        "funnel_steps": funnel_steps(state["funnel"]),
        "failures": failures,
        "failure_reasons": sorted(reasons.items(), key=lambda kv: -kv[1]),
        "message_labels": h.MESSAGE_STATUS_LABELS,
        "skip_labels": h.SKIP_REASON_LABELS,
        "channel_labels": h.CHANNEL_LABELS,
    }


@router.page("GET", "/campagnes/{id}/etat", MANAGERS)
async def campaign_state_json(request: web.Request) -> web.StreamResponse:
    state = await _state(request)
    keys = (
        "id", "status", "status_label", "status_reason", "progress_percent", "counts", "funnel",
        "figures",
    )  # fmt: skip
    return web.json_response({k: state[k] for k in keys})


async def _act(request: web.Request, action: str) -> web.StreamResponse:
    campaign_id = _campaign_id(request)
    runtime = request.app[RUNTIME]
    actor = h.actor(request)
    messages = {
        "pause": "Campagne mise en pause.",
        "resume": "Campagne reprise.",
        "cancel": "Campagne annulée : les messages pas encore partis ne partiront pas.",
        "resend": "Messages non confirmés renvoyés. " + settle.RESEND_WARNING,
        "close": "Messages non confirmés classés comme non envoyés.",
    }
    try:
        if action == "pause":
            await service.pause(campaign_id, actor=actor, reason="mise en pause par l'équipe")
        elif action == "resume":
            await service.resume(campaign_id, actor=actor, runtime=runtime)
        elif action == "resend":
            await settle.resend_unconfirmed(campaign_id, actor=actor, runtime=runtime)
        elif action == "close":
            await settle.close_unconfirmed(
                campaign_id, actor=actor, settings=runtime.settings, now=runtime.clock()
            )
        else:
            await service.cancel(campaign_id, actor=actor, now=runtime.clock())
    except DomainError as exc:
        await h.flash(request, exc.detail, "error")
    else:
        await h.flash(request, messages[action])
    raise web.HTTPSeeOther(f"/campagnes/{campaign_id}")


@router.page("POST", "/campagnes/{id}/pause", MANAGERS)
async def campaign_pause(request: web.Request) -> web.StreamResponse:
    return await _act(request, "pause")


@router.page("POST", "/campagnes/{id}/reprendre", MANAGERS)
async def campaign_resume(request: web.Request) -> web.StreamResponse:
    return await _act(request, "resume")


@router.page("POST", "/campagnes/{id}/annuler", MANAGERS)
async def campaign_cancel(request: web.Request) -> web.StreamResponse:
    return await _act(request, "cancel")


@router.page("POST", "/campagnes/{id}/non-confirmes/renvoyer", MANAGERS)
async def campaign_resend_unconfirmed(request: web.Request) -> web.StreamResponse:
    return await _act(request, "resend")


@router.page("POST", "/campagnes/{id}/non-confirmes/classer", MANAGERS)
async def campaign_close_unconfirmed(request: web.Request) -> web.StreamResponse:
    return await _act(request, "close")

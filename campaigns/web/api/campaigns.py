"""HTTP routes for campaigns: create, launch and its preview, pause, resume, cancel, follow."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from campaigns.campaign import launch as campaign_launch
from campaigns.campaign import lifecycle as service
from campaigns.campaign import reports as campaign_reports
from campaigns.campaign.journey_spec import JourneySpec
from campaigns.campaign.preview import launch_blockers
from campaigns.campaign.progress import campaign_state
from campaigns.core import audit
from campaigns.core.errors import Conflict, Invalid
from campaigns.dispatch import settle
from campaigns.models import CampaignStatus, MessageStatus
from campaigns.staff import MANAGERS, actor_for
from campaigns.web.http import (
    ApiRouter,
    Param,
    current_staff,
    int_param,
    json_response,
    parse_body,
)
from campaigns.web.keys import RUNTIME

CAMPAIGN_STATUS = Param("status", enum=tuple(s.value for s in CampaignStatus))
MESSAGE_STATUS = Param("status", enum=tuple(s.value for s in MessageStatus))

router = ApiRouter("campaigns")
PER_PAGE = 50


class CampaignCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    channel: Literal["sms", "email", "appel"]
    template_id: int
    audience_id: int
    sender: str | None = Field(default=None, max_length=20)
    hotline: str | None = Field(default=None, max_length=40)
    scheduled_at: datetime | None = None
    recurrence_days: int | None = None
    expects_replies: bool = True
    # Later steps for the silent: a reminder, then calls (campaigns.campaign.journey_spec).
    journey: JourneySpec | None = None


class CampaignOut(BaseModel):
    id: int
    name: str
    channel: str
    status: str
    status_label: str
    scheduled_at: str | None
    recurrence_days: int | None
    next_run_at: str | None
    warnings: list[dict[str, str]] = []


class TestSendRequest(BaseModel):
    to: str | None = Field(default=None, max_length=254)


class LaunchOut(BaseModel):
    status: str
    run: dict[str, Any] | None
    recipients: int | None = None
    skipped_by_reason: dict[str, int] | None = None
    parts: int | None = None
    cost_estimate: str | None = None
    warnings: list[dict[str, str]]


@router.route(
    "GET",
    "/api/v1/campaigns",
    summary="Lister les campagnes avec leurs comptes par statut",
    roles=MANAGERS,
    query=(CAMPAIGN_STATUS,),
)
async def list_campaigns(request: web.Request) -> web.Response:
    status = request.query.get("status") or None
    return json_response({"items": await campaign_reports.list_campaigns(status)})


@router.route(
    "POST",
    "/api/v1/campaigns",
    summary="Créer une campagne (brouillon)",
    roles=MANAGERS,
    body=CampaignCreate,
    response=CampaignOut,
)
async def create_campaign(request: web.Request) -> web.Response:
    body = await parse_body(request, CampaignCreate)
    runtime = request.app[RUNTIME]
    campaign = await service.create_campaign(
        name=body.name,
        channel=body.channel,
        template_id=body.template_id,
        audience_id=body.audience_id,
        actor=actor_for(current_staff(request)),
        settings=runtime.settings,
        now=runtime.clock(),
        sender=body.sender,
        hotline=body.hotline,
        scheduled_at=body.scheduled_at,
        recurrence_days=body.recurrence_days,
        expects_replies=body.expects_replies,
        journey=body.journey.model_dump(exclude_none=True) if body.journey else None,
    )
    data = campaign_reports.describe_campaign(campaign)
    data["warnings"] = service.campaign_warnings(campaign, runtime.settings)
    return json_response(data, status=201)


@router.route(
    "GET",
    "/api/v1/campaigns/{id}",
    summary="Une campagne : statut, comptes par statut, coûts, taux de remise, avertissements",
    roles=MANAGERS,
)
async def get_campaign(request: web.Request) -> web.Response:
    settings = request.app[RUNTIME].settings
    return json_response(await campaign_state(int_param(request, "id"), settings))


@router.route(
    "POST",
    "/api/v1/campaigns/{id}/preview-launch",
    summary="Ce que ferait le lancement (destinataires, exclus, coût), sans rien écrire",
    roles=MANAGERS,
)
async def preview_launch(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    return json_response(await campaign_launch.preview_launch(int_param(request, "id"), runtime))


@router.route(
    "POST",
    "/api/v1/campaigns/{id}/launch",
    summary="Lancer la campagne (ou la programmer si sa date est à venir)",
    roles=MANAGERS,
    response=LaunchOut,
)
async def launch(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    actor = actor_for(current_staff(request))
    blockers = await launch_blockers(int_param(request, "id"), runtime.settings)
    if blockers:
        # A placeholder number sent to thousands cannot be taken back: refused here too.
        raise Conflict(" ".join(blockers), code="placeholder")
    return json_response(
        await campaign_launch.launch(int_param(request, "id"), actor=actor, runtime=runtime)
    )


@router.route("POST", "/api/v1/campaigns/{id}/pause", summary="Mettre en pause", roles=MANAGERS)
async def pause(request: web.Request) -> web.Response:
    actor = actor_for(current_staff(request))
    campaign = await service.pause(int_param(request, "id"), actor=actor)
    return json_response(campaign_reports.describe_campaign(campaign))


@router.route("POST", "/api/v1/campaigns/{id}/resume", summary="Reprendre", roles=MANAGERS)
async def resume(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    actor = actor_for(current_staff(request))
    campaign = await service.resume(int_param(request, "id"), actor=actor, runtime=runtime)
    return json_response(campaign_reports.describe_campaign(campaign))


@router.route(
    "POST",
    "/api/v1/campaigns/{id}/cancel",
    summary="Annuler (les messages pas encore partis sont annulés)",
    roles=MANAGERS,
)
async def cancel(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    actor = actor_for(current_staff(request))
    result = await service.cancel(int_param(request, "id"), actor=actor, now=runtime.clock())
    return json_response(result)


@router.route(
    "POST",
    "/api/v1/campaigns/{id}/unconfirmed/resend",
    summary="Renvoyer les messages non confirmés après le délai des accusés "
    "(quelques personnes pourraient le recevoir deux fois)",
    roles=MANAGERS,
)
async def resend_unconfirmed(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    actor = actor_for(current_staff(request))
    result = await settle.resend_unconfirmed(int_param(request, "id"), actor=actor, runtime=runtime)
    return json_response(result)


@router.route(
    "POST",
    "/api/v1/campaigns/{id}/unconfirmed/close",
    summary="Classer comme non envoyés les messages non confirmés après le délai des accusés",
    roles=MANAGERS,
)
async def close_unconfirmed(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    actor = actor_for(current_staff(request))
    result = await settle.close_unconfirmed(
        int_param(request, "id"), actor=actor, settings=runtime.settings, now=runtime.clock()
    )
    return json_response(result)


@router.route(
    "POST",
    "/api/v1/campaigns/{id}/test-send",
    summary="Envoi de test au téléphone ou à l'e-mail de l'agent (ou à `to`)",
    roles=MANAGERS,
    body=TestSendRequest,
)
async def test_send(request: web.Request) -> web.Response:
    body = (
        await parse_body(request, TestSendRequest) if request.can_read_body else TestSendRequest()
    )
    result = await service.send_test_message(
        int_param(request, "id"),
        staff=current_staff(request),
        runtime=request.app[RUNTIME],
        to=body.to,
    )
    return json_response(result)


def _page(request: web.Request) -> int:
    try:
        return max(int(request.query.get("page", "1")), 1)
    except ValueError:
        raise Invalid("Numéro de page invalide", code="bad_page") from None


@router.route(
    "GET",
    "/api/v1/campaigns/{id}/messages",
    summary="Les messages de la campagne, un par destinataire, par pages",
    roles=MANAGERS,
    query=(MESSAGE_STATUS, "page"),
)
async def list_messages(request: web.Request) -> web.Response:
    campaign_id = int_param(request, "id")
    result = await campaign_reports.list_messages(
        campaign_id,
        status=request.query.get("status") or None,
        page=_page(request),
        per_page=PER_PAGE,
    )
    # Addresses and rendered texts of many people: audited like an export.
    await audit.record(
        actor_for(current_staff(request)), "campaign.messages", "campaign", campaign_id
    )
    return json_response(result)


@router.route(
    "GET",
    "/api/v1/campaigns/{id}/messages.csv",
    summary="Export CSV des messages de la campagne",
    roles=MANAGERS,
    query=(MESSAGE_STATUS,),
    content_type="text/csv",
)
async def export_messages(request: web.Request) -> web.StreamResponse:
    campaign_id = int_param(request, "id")
    status = request.query.get("status") or None
    chunks = campaign_reports.messages_csv(campaign_id, status=status)
    first = await anext(chunks)  # raises NotFound before any byte is sent
    await audit.record(
        actor_for(current_staff(request)), "campaign.export", "campaign", campaign_id
    )
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="campagne-{campaign_id}-messages.csv"',
        }
    )
    await response.prepare(request)
    await response.write(first.encode("utf-8"))
    async for chunk in chunks:
        await response.write(chunk.encode("utf-8"))
    await response.write_eof()
    return response

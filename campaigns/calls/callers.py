"""Who takes a call campaign's pool: the staff named on it, volunteers included."""

from __future__ import annotations

from campaigns.core import audit
from campaigns.core.audit import Actor
from campaigns.core.errors import Invalid, NotFound
from campaigns.models import Campaign, CampaignCaller, CampaignStatus, Staff

MAX_CALLERS = 500


async def call_campaign(campaign_id: int) -> Campaign:
    campaign = await Campaign.get_or_none(id=campaign_id)
    if campaign is None:
        raise NotFound("Campagne introuvable.")
    if campaign.channel != "appel":
        raise Invalid("Cette campagne n'est pas une campagne d'appels.", code="not_a_call_campaign")
    return campaign


async def set_callers(
    campaign_id: int, emails: list[str], *, actor: Actor
) -> list[dict[str, object]]:
    """Name the callers of a campaign (the list replaces the previous one)."""
    await call_campaign(campaign_id)
    wanted = list(dict.fromkeys(e.strip().lower() for e in emails if e and e.strip()))
    if len(wanted) > MAX_CALLERS:
        raise Invalid(f"Au plus {MAX_CALLERS} appelant·es par campagne.", code="too_many_callers")
    staff = await Staff.filter(email__in=wanted, active=True) if wanted else []
    unknown = sorted(set(wanted) - {s.email for s in staff})
    if unknown:
        raise Invalid("Compte inconnu ou désactivé : " + ", ".join(unknown), code="unknown_staff")
    ids = [s.id for s in staff]
    await CampaignCaller.filter(campaign_id=campaign_id).exclude(staff_id__in=ids).delete()
    rows = await CampaignCaller.filter(campaign_id=campaign_id).values_list("staff_id", flat=True)
    present = {int(str(row)) for row in rows}
    await CampaignCaller.bulk_create(
        [CampaignCaller(campaign_id=campaign_id, staff_id=i) for i in ids if i not in present]
    )
    await audit.record(actor, "campaign.callers", "campaign", campaign_id, callers=len(ids))
    return await callers_of(campaign_id)


async def callers_of(campaign_id: int) -> list[dict[str, object]]:
    ids = await CampaignCaller.filter(campaign_id=campaign_id).values_list("staff_id", flat=True)
    staff = await Staff.filter(id__in=list(ids)).order_by("name", "email")
    return [{"id": s.id, "email": s.email, "name": s.name, "role": s.role.value} for s in staff]


async def caller_ids(campaign_id: int) -> dict[str, int]:
    """Active callers of the campaign by e-mail (referents are matched by e-mail)."""
    ids = await CampaignCaller.filter(campaign_id=campaign_id).values_list("staff_id", flat=True)
    rows = await Staff.filter(id__in=list(ids), active=True).values_list("email", "id")
    return {str(email): int(staff_id) for email, staff_id in rows}


async def running_call_campaigns(ids: list[int] | None = None) -> list[int]:
    """The call campaigns running now (among `ids` when given): only their calls are taken."""
    if ids is not None and not ids:
        return []
    query = Campaign.filter(channel="appel", status=CampaignStatus.RUNNING)
    if ids is not None:
        query = query.filter(id__in=ids)
    return [int(str(r)) for r in await query.values_list("id", flat=True)]


async def campaigns_called_by(staff_id: int) -> list[int]:
    rows = await CampaignCaller.filter(staff_id=staff_id).values_list("campaign_id", flat=True)
    return [int(str(r)) for r in rows]

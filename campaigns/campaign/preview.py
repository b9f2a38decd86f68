"""What the launch confirmation shows beyond the counts: the message as real people get it.

The confirmation renders the campaign's message for a few recipients of its audience
(the first ones launch would queue), with the parts, the encoding and the cost of each,
so a coordinator reads what leaves, not the template. Showing these people's names to a
coordinator is a view of their data: it is audited like any other.

It also says what must not leave: a message still carrying the placeholder hotline or
CCAS name of the default configuration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from jinja2 import Environment, TemplateSyntaxError, nodes

from campaigns.campaign.launch_batches import PERSON_COLUMNS, address_key, usable_address
from campaigns.campaign.lifecycle import check_version, get_campaign, money
from campaigns.core import audit
from campaigns.core.audit import Actor
from campaigns.core.audit_text import proper_name
from campaigns.core.settings import Settings
from campaigns.messages.renderer import CampaignRenderer
from campaigns.messages.rendering import TemplateError
from campaigns.models import Audience, Campaign, OptOut, TemplateVersion
from campaigns.registry.audiences import audience_query
from campaigns.rules.sms_encoding import GSM7, analyse

__all__ = [
    "ENCODING_EXPLAINED",
    "SAMPLE_SIZE",
    "Sample",
    "launch_samples",
    "placeholder_problems",
]

SAMPLE_SIZE = 3
# People read per query while looking for recipients who would really be sent the message.
_SCAN = 50
_MAX_SCANNED = 1000

ENCODING_EXPLAINED = {
    "GSM-7": "GSM-7 : 160 caractères par SMS (153 par partie au-delà)",
    "UCS-2": (
        "UCS-2 (accents ou emoji hors alphabet SMS) : 70 caractères par SMS (67 par partie au-delà)"
    ),
}


@dataclass
class Sample:
    """One recipient's message as it will leave, with what it costs."""

    person_id: int
    name: str
    address: str
    text: str
    subject: str | None = None
    encoding: str | None = None  # None for an e-mail
    encoding_explained: str | None = None
    characters: int = 0
    units: int = 0  # septets (GSM-7) or UTF-16 units (UCS-2)
    segments: int = 1
    parts: list[str] = field(default_factory=list)
    ucs2_chars: list[str] = field(default_factory=list)
    cost: str = "0.00"
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _display_name(row: Sequence[Any]) -> str:
    # As a coordinator says it: "Paulette Andre", whatever case the register used.
    name = " ".join(proper_name(str(v)) for v in (row[2], row[3]) if v and str(v).strip())
    return name or f"n° {row[0]}"


async def _criteria(campaign: Campaign) -> dict[str, Any]:
    """The filter frozen at the first launch, else the saved audience's current one."""
    snapshot = campaign.audience_snapshot or {}
    if snapshot.get("filter") is not None:
        return dict(snapshot["filter"])
    audience = await Audience.get_or_none(id=campaign.audience_id)
    return dict(audience.criteria) if audience is not None else {}


async def _recipients(campaign: Campaign, today: Any, limit: int) -> list[tuple[Any, ...]]:
    """The first people of the audience launch would queue: a usable address, not opted out.

    Duplicate addresses are left to the launch's own rules: a sample only needs people who
    get the message, and the first holder of an address does.
    """
    query = audience_query(await _criteria(campaign), today)
    found: list[tuple[Any, ...]] = []
    seen: set[str] = set()
    last = scanned = 0
    while len(found) < limit and scanned < _MAX_SCANNED:
        rows = (
            await query.filter(id__gt=last).order_by("id").limit(_SCAN).values_list(*PERSON_COLUMNS)
        )
        if not rows:
            break
        scanned += len(rows)
        last = rows[-1][0]
        usable = [(row, usable_address(campaign.channel, row)[0]) for row in rows]
        addresses = [a for _, a in usable if a]
        candidates = set(addresses) | {address_key(campaign.channel, a) for a in addresses}
        # tortoise types flat value lists as tuples: these are the plain addresses.
        opted_out: list[str] = await OptOut.filter(  # type: ignore[assignment]
            address__in=list(candidates), active=True
        ).values_list("address", flat=True)
        blocked = {address_key(campaign.channel, a) for a in opted_out}
        for row, address in usable:
            if address is None:
                continue
            key = address_key(campaign.channel, address)
            if key in blocked or key in seen:
                continue
            seen.add(key)
            found.append(tuple(row))
            if len(found) == limit:
                break
    return found


def _sample(
    renderer: CampaignRenderer, campaign: Campaign, row: Sequence[Any], price: Decimal
) -> Sample:
    address = usable_address(campaign.channel, row)[0] or ""
    sample = Sample(person_id=row[0], name=_display_name(row), address=address, text="")
    try:
        if campaign.channel == "sms":
            text, _, _ = renderer.sms(row)
            # Already in its sent form: analysed as is, for its parts and counts.
            found = analyse(text, normalise=False, fold=False)
            sample.text = found.text
            sample.encoding = found.encoding
            sample.encoding_explained = ENCODING_EXPLAINED.get(found.encoding, found.encoding)
            sample.characters = len(found.text)
            sample.units = found.units
            sample.segments = found.segments
            sample.parts = list(found.parts)
            sample.ucs2_chars = list(found.ucs2_chars) if found.encoding != GSM7 else []
        else:
            subject, text, _ = renderer.email(row)
            sample.subject, sample.text = subject, text
            sample.characters = len(text)
            sample.parts = [text]
    except TemplateError as exc:
        sample.error = exc.message
        sample.segments = 0
    sample.cost = money(Decimal(sample.segments) * price)
    return sample


async def launch_samples(
    campaign_id: int,
    settings: Settings,
    now: datetime,
    *,
    actor: Actor,
    limit: int = SAMPLE_SIZE,
) -> list[Sample]:
    """The message rendered for the first `limit` recipients; the view of them is audited."""
    campaign = await get_campaign(campaign_id)
    version: TemplateVersion = await check_version(campaign)
    rows = await _recipients(campaign, now.astimezone(settings.tz).date(), limit)
    if not rows:
        return []
    renderer = CampaignRenderer(campaign, version, settings, columns=PERSON_COLUMNS)
    price = Decimal(campaign.price_per_part)
    samples = [_sample(renderer, campaign, row, price) for row in rows]
    await audit.record_many(
        actor,
        "person.view",
        "person",
        [s.person_id for s in samples],
        via="launch_preview",
        campaign_id=campaign.id,
    )
    return samples


# --- placeholders -------------------------------------------------------------------------


def _ccas_fields_read(sources: Sequence[str | None]) -> set[str]:
    """The `ccas.x` fields the templates print (all of them when a template is opaque)."""
    read: set[str] = set()
    for source in sources:
        if not source:
            continue
        try:
            ast = Environment().parse(source)
        except TemplateSyntaxError:
            return {"name", "hotline", "hours"}
        for node in ast.find_all(nodes.Getattr):
            if isinstance(node.node, nodes.Name) and node.node.name == "ccas":
                read.add(node.attr)
        for item in ast.find_all(nodes.Getitem):
            named = isinstance(item.node, nodes.Name) and item.node.name == "ccas"
            if named and isinstance(item.arg, nodes.Const):
                read.add(str(item.arg.value))
    return read


def placeholder_problems(
    campaign: Campaign, version: TemplateVersion, settings: Settings
) -> list[str]:
    """Why the message cannot leave yet: a hotline or CCAS name still the shipped placeholder.

    Only what the message prints counts: a template that does not name the hotline may
    leave with the default one configured.
    """
    defaults = type(settings).model_fields
    read = _ccas_fields_read([version.body, version.subject, version.body_html])
    problems = []
    hotline = campaign.hotline or settings.ccas_hotline
    if "hotline" in read and hotline.strip() == str(defaults["ccas_hotline"].default):
        problems.append(
            f"Le numéro d'appel est encore celui d'exemple (« {hotline} ») : indiquez le vrai "
            "numéro dans CAMPAIGNS_CCAS_HOTLINE, ou un numéro propre à la campagne."
        )
    if "name" in read and settings.ccas_name.strip() == str(defaults["ccas_name"].default):
        problems.append(
            f"Le nom du CCAS est encore celui par défaut (« {settings.ccas_name} ») : indiquez "
            "le nom que les destinataires connaissent dans CAMPAIGNS_CCAS_NAME "
            "(par exemple « CCAS de Villeurbanne »)."
        )
    return problems


async def launch_blockers(campaign_id: int, settings: Settings) -> list[str]:
    """`placeholder_problems` of a campaign by its id (for the launch confirmation)."""
    campaign = await get_campaign(campaign_id)
    version = await check_version(campaign)
    return placeholder_problems(campaign, version, settings)

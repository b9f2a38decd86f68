"""A journey's later steps, as a coordinator writes them when creating a campaign.

SMS invitation -> after `reminder_days`, a reminder (same channel) to those who neither
replied, nor were reached, nor opted out -> `call_days` later, a call task for those
still silent. Either step may be left out. Those whose message failed (unknown number)
go to the call step at once.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from campaigns.core.errors import Invalid, problems_of
from campaigns.models import Template

MAX_DAYS = 60


class JourneySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reminder_days: int | None = Field(default=None, ge=1, le=MAX_DAYS)
    reminder_template_id: int | None = Field(default=None, ge=1, le=2_147_483_647)
    call_days: int | None = Field(default=None, ge=1, le=MAX_DAYS)
    call_template_id: int | None = Field(default=None, ge=1, le=2_147_483_647)
    # Who takes the call step's pool (referents among them keep their people).
    callers: list[str] = Field(default_factory=list, max_length=500)

    @model_validator(mode="after")
    def _steps(self) -> JourneySpec:
        if (self.reminder_days is None) != (self.reminder_template_id is None):
            raise ValueError("la relance demande reminder_days et reminder_template_id")
        if (self.call_days is None) != (self.call_template_id is None):
            raise ValueError("l'étape d'appel demande call_days et call_template_id")
        if self.reminder_days is None and self.call_days is None:
            raise ValueError("un parcours a au moins une étape (relance ou appel)")
        return self


def parse_journey(data: Any) -> JourneySpec:
    try:
        return JourneySpec.model_validate(data)
    except ValidationError as exc:
        problems = problems_of(exc, "parcours")
        raise Invalid(f"Parcours invalide : {problems}", code="invalid_journey") from None


async def check_journey(channel: str, data: Any) -> dict[str, Any]:
    """The journey as stored on the campaign, its templates checked against their steps."""
    if channel not in ("sms", "email"):
        raise Invalid("Un parcours commence par un SMS ou un e-mail.", code="invalid_journey")
    spec = parse_journey(data)
    for template_id, wanted, step in (
        (spec.reminder_template_id, channel, "la relance"),
        (spec.call_template_id, "appel", "l'étape d'appel"),
    ):
        if template_id is None:
            continue
        template = await Template.get_or_none(id=template_id)
        if template is None:
            raise Invalid(f"Modèle {template_id} introuvable pour {step}.", code="invalid_journey")
        if template.channel != wanted:
            raise Invalid(
                f"Le modèle de {step} doit être du canal « {wanted} ».", code="invalid_journey"
            )
    stored = spec.model_dump(exclude_none=True)
    stored["callers"] = [e.strip().lower() for e in spec.callers if e.strip()]
    return stored

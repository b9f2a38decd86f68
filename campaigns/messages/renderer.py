"""Renders a campaign's message for one person, the template compiled once per campaign."""

from __future__ import annotations

from typing import Any

from campaigns.core.settings import Settings
from campaigns.messages.rendering import CampaignVars, TemplateVars, render_email, render_sms_text
from campaigns.messages.template_store import ccas_vars, person_vars
from campaigns.models import Campaign, TemplateVersion
from campaigns.registry.optouts import unsubscribe_url
from campaigns.rules.sms_encoding import SmsAnalysis, analyse


class CampaignRenderer:
    """Renders one person's message with the template compiled once; caches SMS analyses."""

    def __init__(self, campaign: Campaign, version: TemplateVersion, settings: Settings) -> None:
        self.channel = campaign.channel
        self.version = version
        self.settings = settings
        self.ccas = ccas_vars(settings, campaign.hotline)
        self.campaign = CampaignVars(name=campaign.name)
        self._analyses: dict[str, SmsAnalysis] = {}

    def render(self, row: dict[str, Any]) -> dict[str, Any]:
        variables = TemplateVars(
            person=person_vars(row["civility"], row["first_name"], row["last_name"]),
            ccas=self.ccas,
            campaign=self.campaign,
        )
        if self.channel == "sms":
            text = render_sms_text(
                self.version.body, variables, optout_mention=self.settings.sms_optout_mention
            )
            sms = self._analyses.get(text)
            if sms is None:
                sms = analyse(text, normalise=True, fold=self.version.fold_accents)
                self._analyses[text] = sms
            return {"text": sms.text, "encoding": sms.encoding, "segments": sms.segments}
        url = unsubscribe_url(
            self.settings.public_url, self.settings.signing_key, (row["email"] or "").strip()
        )
        email = render_email(
            self.version.subject or "", self.version.body, self.version.body_html, variables, url
        )
        return {"subject": email.subject, "text": email.text, "html": email.html, "segments": 1}


__all__ = ["CampaignRenderer"]

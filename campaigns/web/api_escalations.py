"""HTTP routes for escalations (filled in by its owner)."""

from __future__ import annotations

from campaigns.web.api import ApiRouter

router = ApiRouter("escalations")

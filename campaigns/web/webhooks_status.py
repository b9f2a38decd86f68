"""HTTP routes for webhooks (filled in by its owner)."""

from __future__ import annotations

from campaigns.web.api import ApiRouter

router = ApiRouter("webhooks")

"""The list of what the web app serves: API routers, webhooks and staff pages."""

from __future__ import annotations

from aiohttp import web

from campaigns.web import (
    api_audiences,
    api_campaigns,
    api_escalations,
    api_imports,
    api_people,
    api_templates,
    auth,
    webhooks_inbound,
    webhooks_status,
)
from campaigns.web.api import ApiRouter, Handler


def api_routers() -> list[ApiRouter]:
    return [
        auth.router,
        api_people.router,
        api_imports.router,
        api_audiences.router,
        api_templates.router,
        api_campaigns.router,
        api_escalations.router,
        webhooks_inbound.router,
        webhooks_status.router,
    ]


def extra_middlewares() -> list[Handler]:
    """Middlewares of the staff pages (sessions, CSRF, security headers) go here."""
    return []


def setup_extras(app: web.Application) -> None:
    """Staff pages register themselves here."""

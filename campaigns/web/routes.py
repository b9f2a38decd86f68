"""The list of what the web app serves: API routers, webhooks and staff pages."""

from __future__ import annotations

from aiohttp import web

from campaigns.runtime import Runtime
from campaigns.web import (
    api_audiences,
    api_campaigns,
    api_escalations,
    api_imports,
    api_people,
    api_templates,
    auth,
    security,
    unsubscribe,
    webhooks_inbound,
    webhooks_status,
)
from campaigns.web.api import ApiRouter, Handler
from campaigns.web.pages import (
    admin_pages,
    audiences,
    campaign_pages,
    dashboard,
    imports,
    message_templates,
    people,
    queue_pages,
    session,
)
from campaigns.web.pages.base import PageRouter, setup_templates


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
        unsubscribe.router,
    ]


def page_routers() -> list[PageRouter]:
    return [
        session.router,
        dashboard.router,
        people.router,
        imports.router,
        audiences.router,
        message_templates.router,
        campaign_pages.router,
        queue_pages.router,
        admin_pages.router,
    ]


def extra_middlewares(runtime: Runtime) -> list[Handler]:
    return security.session_middlewares(runtime.settings)


def setup_extras(app: web.Application, runtime: Runtime) -> None:
    security.install(app)
    setup_templates(app, runtime.settings.tz)
    for router in page_routers():
        router.add_to(app)

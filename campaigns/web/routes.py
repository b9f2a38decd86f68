"""The list of what the web app serves: API routers, webhooks and staff pages."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Middleware

from campaigns.core.runtime import Runtime
from campaigns.web import auth, security, unsubscribe
from campaigns.web.api import audiences as api_audiences
from campaigns.web.api import calls as api_calls
from campaigns.web.api import campaigns as api_campaigns
from campaigns.web.api import escalations as api_escalations
from campaigns.web.api import imports as api_imports
from campaigns.web.api import people as api_people
from campaigns.web.api import replies as api_replies
from campaigns.web.api import templates as api_templates
from campaigns.web.http import ApiRouter
from campaigns.web.pages import (
    admin_pages,
    audiences,
    calls,
    campaign_pages,
    dashboard,
    imports,
    message_templates,
    people,
    queue_pages,
    replies,
    session,
)
from campaigns.web.pages.base import PageRouter, setup_templates
from campaigns.web.webhooks import inbound as webhooks_inbound
from campaigns.web.webhooks import status as webhooks_status


def api_routers() -> list[ApiRouter]:
    return [
        auth.router,
        api_people.router,
        api_imports.router,
        api_audiences.router,
        api_templates.router,
        api_campaigns.router,
        api_calls.router,
        api_escalations.router,
        api_replies.router,
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
        calls.router,
        admin_pages.router,
        replies.router,
    ]


def extra_middlewares(runtime: Runtime) -> list[Middleware]:
    return security.session_middlewares(runtime.settings)


def setup_extras(app: web.Application, runtime: Runtime) -> None:
    security.install(app)
    setup_templates(app, runtime.settings.tz)
    for router in page_routers():
        router.add_to(app)

"""The list of what the web app serves: API routers, webhooks and staff pages."""

from __future__ import annotations

from aiohttp import web

from campaigns.web.api import ApiRouter, Handler


def api_routers() -> list[ApiRouter]:
    from campaigns.web import auth

    return [auth.router]


def extra_middlewares() -> list[Handler]:
    return []


def setup_extras(app: web.Application) -> None:
    """Webhooks and pages register themselves here."""

"""The web application factory: one composition root for the HTTP process."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from aiohttp import web
from tortoise import Tortoise

from campaigns.core.runtime import Runtime
from campaigns.web import routes
from campaigns.web.errors import error_middleware
from campaigns.web.http import json_response
from campaigns.web.keys import RUNTIME
from campaigns.web.middleware import auth_middleware, edge_middleware
from campaigns.web.openapi import build_openapi

MAX_UPLOAD = 50 * 1024 * 1024


def package_version() -> str:
    try:
        return version("campaigns")
    except PackageNotFoundError:
        return "0"


def create_app(runtime: Runtime) -> web.Application:
    """Build the app; the caller has initialised the database (see `campaigns serve`)."""
    app = web.Application(
        middlewares=[
            error_middleware,
            edge_middleware,
            *routes.extra_middlewares(runtime),
            auth_middleware,
        ],
        client_max_size=MAX_UPLOAD,
    )
    app[RUNTIME] = runtime
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/openapi.json", openapi)
    for router in routes.api_routers():
        router.add_to(app)
    routes.setup_extras(app, runtime)
    return app


async def healthz(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    checks: dict[str, str] = {}
    try:
        await Tortoise.get_connection("default").execute_query("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    if runtime.redis is not None:
        try:
            await runtime.redis.ping()
            checks["queue"] = "ok"
        except Exception as exc:
            checks["queue"] = f"error: {type(exc).__name__}"
    else:
        checks["queue"] = "in-process"
    healthy = all(value in {"ok", "in-process"} for value in checks.values())
    return json_response(
        {"status": "ok" if healthy else "degraded", **checks}, status=200 if healthy else 503
    )


async def openapi(request: web.Request) -> web.Response:
    return json_response(build_openapi(routes.api_routers(), version=package_version()))

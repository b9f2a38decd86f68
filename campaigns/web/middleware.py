"""Who is calling: a bearer token for the API, or a staff session from the pages."""

from __future__ import annotations

from aiohttp import web

from campaigns import staff as staff_service
from campaigns.models import Staff
from campaigns.web.keys import SESSION_LOADER, STAFF, Handler


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[STAFF] = await _resolve_staff(request)
    return await handler(request)


async def _resolve_staff(request: web.Request) -> Staff | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return await staff_service.staff_for_token(header[7:].strip())
    # Pages keep the staff id in an encrypted session cookie (see campaigns.web.security).
    loader = request.app.get(SESSION_LOADER)
    if loader is not None:
        staff_id = await loader(request)
        if staff_id is not None:
            return await staff_service.active_staff(staff_id)
    return None

"""What the web modules share: typed keys of the app and the request, session keys, handler type.

Every web module imports these from here and from nowhere else, so that the API routes,
the middlewares and the pages depend on this module rather than on one another.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from campaigns.core.runtime import Runtime
from campaigns.models import Staff
from campaigns.web.throttle import LoginThrottle

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Reads (staff id, session version) of a page session (None without one); installed by
# campaigns.web.security.
SessionLoader = Callable[[web.Request], Awaitable[tuple[int, int] | None]]

RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime")
SESSION_LOADER: web.AppKey[SessionLoader] = web.AppKey("session_loader")
LOGIN_THROTTLE: web.AppKey[LoginThrottle] = web.AppKey("login_throttle", LoginThrottle)
# Who is calling (None: anonymous), set by campaigns.web.middleware for every request.
STAFF: web.RequestKey[Staff | None] = web.RequestKey("staff", Staff)
# Where the encrypted page session keeps the staff id.
SESSION_STAFF_KEY = "staff_id"
# ... and the account's session version when it was opened (see Staff.session_version).
SESSION_VERSION_KEY = "session_version"

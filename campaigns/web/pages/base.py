"""What every staff page shares: the Jinja2 environment, the role guard, the navigation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import partial, wraps
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp_session import get_session

from campaigns.models import Role, Staff
from campaigns.staff import ADMINS, ALL_ROLES, CALLERS, MANAGERS
from campaigns.web.keys import STAFF
from campaigns.web.security import CSRF_FIELD, csrf_token

TEMPLATES_DIR = Path(__file__).resolve().parents[3] / "templates" / "web"
STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
PageHandler = Callable[[web.Request], Awaitable[web.StreamResponse | dict[str, Any]]]
FLASH_KEY = "flash"


@dataclass(frozen=True)
class NavItem:
    path: str
    label: str
    roles: tuple[Role, ...]


NAV: list[NavItem] = [
    NavItem("/", "Tableau de bord", ALL_ROLES),
    NavItem("/personnes", "Personnes", MANAGERS),
    NavItem("/imports", "Imports", MANAGERS),
    NavItem("/publics", "Publics", MANAGERS),
    NavItem("/modeles", "Modèles", MANAGERS),
    NavItem("/campagnes", "Campagnes", MANAGERS),
    NavItem("/reponses", "Réponses", MANAGERS),
    NavItem("/files", "Files d'attente", ALL_ROLES),
    # Volunteers see this item and no other: calls are all they do here.
    NavItem("/appels", "Appels", CALLERS),
    NavItem("/journal", "Journal", ADMINS),
    NavItem("/equipe", "Équipe", ADMINS),
    NavItem("/envoyes", "Envoyés", MANAGERS),
    NavItem("/admin/modele", "Classement", ADMINS),
]


def setup_templates(app: web.Application, tz: ZoneInfo) -> None:
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["datetime_fr"] = partial(datetime_fr, tz=tz)
    env.filters["date_fr"] = partial(date_fr, tz=tz)
    env.filters["nombre"] = number_fr
    env.filters["euros"] = euros_fr
    env.filters["pourcent"] = percent_fr
    app.router.add_static("/static/", STATIC_DIR, name="static")


def _aware(value: datetime | str) -> datetime | None:
    """A datetime (or its ISO text, as the domain's dicts carry it), UTC when naive."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def datetime_fr(value: datetime | str | None, *, tz: ZoneInfo) -> str:
    """Staff read times in the CCAS's own time zone, French style (stored times are UTC)."""
    if not value:
        return "—"
    moment = _aware(value)
    if moment is None:
        return str(value)
    return moment.astimezone(tz).strftime("%d/%m/%Y %H:%M")


def date_fr(value: date | datetime | str | None, *, tz: ZoneInfo | None = None) -> str:
    """A date (or its ISO text) as French staff write it: 30/01/1996.

    A moment (a datetime, or ISO text with a time) is first taken to the CCAS's zone: a
    campaign created at 23:30 in Paris was created that day, not the next one in UTC.
    """
    if not value:
        return "—"
    if isinstance(value, str) and len(value) > 10:
        moment = _aware(value)
        if moment is None:
            return value
        value = moment
    if isinstance(value, datetime):
        return (value.astimezone(tz) if tz else value).strftime("%d/%m/%Y")
    if isinstance(value, str):
        try:
            return date.fromisoformat(value[:10]).strftime("%d/%m/%Y")
        except ValueError:
            return value
    return value.strftime("%d/%m/%Y")


# French typography: a no-break space groups thousands and holds "€" or "%" to its number.
NBSP = "\u00a0"


def number_fr(value: int | float | Decimal | str | None, places: int = 0) -> str:
    """1234 -> "1 234", 97.371 with places=2 -> "97,37" (no-break spaces, decimal comma)."""
    if value is None or value == "":
        return "—"
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    text = f"{amount:,.{places}f}"
    return text.replace(",", NBSP).replace(".", ",")


def euros_fr(value: int | float | Decimal | str | None, places: int = 2) -> str:
    """An amount as a French invoice prints it: "97,37 €"."""
    if value is None or value == "":
        return "—"
    return f"{number_fr(value, places)}{NBSP}€"


def percent_fr(ratio: float | None, places: int = 0) -> str:
    """A ratio (0.973) as "97 %"."""
    if ratio is None:
        return "—"
    return f"{number_fr(ratio * 100, places)}{NBSP}%"


async def render(
    template: str, request: web.Request, context: dict[str, Any], *, status: int = 200
) -> web.Response:
    """Render a page with what every page shows (staff, menu, CSRF token, flash message).

    Not a jinja context processor: aiohttp-jinja2 runs those on every request, webhooks and
    API calls included, and this one touches the session.
    """
    full = {**await _context(request), **context}
    return aiohttp_jinja2.render_template(template, request, full, status=status)


async def _context(request: web.Request) -> dict[str, Any]:
    staff: Staff | None = request.get(STAFF)
    nav = [item for item in NAV if staff is not None and staff.role in item.roles]
    session = await get_session(request)
    return {
        "staff": staff,
        # A one-shot message left by the previous request (after a redirect).
        "flash": session.pop(FLASH_KEY, None),
        "nav": nav,
        "current_path": request.path,
        "csrf_field": CSRF_FIELD,
        "csrf_token": await csrf_token(request),
    }


@dataclass
class PageRoute:
    method: str
    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    roles: tuple[Role, ...] | None


@dataclass
class PageRouter:
    """Page routes of one module, each with the roles allowed to see it."""

    routes: list[PageRoute] = field(default_factory=list)

    def page(
        self, method: str, path: str, roles: tuple[Role, ...], template: str | None = None
    ) -> Callable[[PageHandler], PageHandler]:
        def decorate(handler: PageHandler) -> PageHandler:
            guarded = guard(roles, template)(handler)
            self.routes.append(PageRoute(method, path, guarded, roles))
            return guarded

        return decorate

    def public(self, method: str, path: str) -> Callable[[PageHandler], PageHandler]:
        def decorate(handler: PageHandler) -> PageHandler:
            self.routes.append(PageRoute(method, path, handler, None))  # type: ignore[arg-type]
            return handler

        return decorate

    def add_to(self, app: web.Application) -> None:
        for route in self.routes:
            app.router.add_route(route.method, route.path, route.handler)


def guard(
    roles: tuple[Role, ...], template: str | None = None
) -> Callable[[PageHandler], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    """Anonymous users go to the login page, wrong roles get a French 403 page."""

    def decorate(handler: PageHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        @wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            staff = request.get(STAFF)
            if staff is None:
                raise web.HTTPFound(f"/connexion?suite={request.path_qs}")
            if staff.must_change_password and request.path != "/mot-de-passe":
                # A one-time password opens nothing but the page that replaces it.
                raise web.HTTPFound("/mot-de-passe")
            if staff.role not in roles:
                return await render("forbidden.html", request, {}, status=403)
            result = await handler(request)
            if isinstance(result, web.StreamResponse):
                return result
            assert template is not None
            return await render(template, request, result)

        return guarded

    return decorate


def current_page_staff(request: web.Request) -> Staff:
    staff: Staff | None = request.get(STAFF)
    if staff is None:
        raise web.HTTPFound("/connexion")
    return staff

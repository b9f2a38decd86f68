"""Every route of the app against every role, from one declared table: a new route must be listed.

Each registered route (pages, API, webhooks, static) is called as admin, coordinator,
caseworker, volunteer (benevole) and anonymous, with path parameters filled with ids of
real rows. Allowed means "neither 401 nor 403, nor sent to the login page, nor a server
error"; forbidden means 403; anonymous gets the login page (pages) or 401 (API). HEAD
follows its GET. A volunteer takes calls and nothing else: every other route is a 403.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp
from aiohttp.test_utils import TestClient

from campaigns import staff as staff_service
from campaigns.campaign import lifecycle as campaign_service
from campaigns.core.audit import Actor
from campaigns.messages import template_store as store
from campaigns.models import CallTask, Escalation, Person, Reply, Role, Staff
from campaigns.registry import audiences
from campaigns.web import routes
from campaigns.web.keys import RUNTIME
from campaigns.web.pages import imports as import_pages
from campaigns.web.pages.base import NAV
from tests.call_support import call_campaign, fragile_register

ADMIN, COORD, CASE = Role.ADMIN.value, Role.COORDINATOR.value, Role.CASEWORKER.value
BENE = Role.BENEVOLE.value
ALL = frozenset({ADMIN, COORD, CASE})
CALLERS = frozenset({*ALL, BENE})
MANAGERS = frozenset({ADMIN, COORD})
ADMINS = frozenset({ADMIN})
PUBLIC = None
# The volunteer last: the calls they take come after the others' tries (see _rows).
ROLES_IN_ORDER = ("anonymous", CASE, COORD, ADMIN, BENE)
PASSWORD = "mot-de-passe-solide"


@dataclass(frozen=True)
class Rule:
    roles: frozenset[str] | None  # None: public (no staff login involved)
    # Path parameters taken from another row than the default (destructive routes).
    ids: dict[str, str] = field(default_factory=dict)
    # A public route whose own purpose is to answer 401 to bad credentials.
    login: bool = False
    # Logging out lands an allowed role on the login page, on purpose.
    logout: bool = False
    # Roles sent elsewhere on purpose, with where they land (a volunteer's "/" is /appels).
    lands: dict[str, str] = field(default_factory=dict)


VICTIM_PERSON = {"id": "victim_person"}
VICTIM_STAFF = {"id": "victim_staff"}
CALL_CAMPAIGN = {"id": "call_campaign"}
ROUTES: dict[tuple[str, str], Rule] = {
    # Public: health, API description, login, webhooks (signed), unsubscribe links, static.
    ("GET", "/healthz"): Rule(PUBLIC),
    ("GET", "/api/openapi.json"): Rule(PUBLIC),
    ("POST", "/api/v1/auth/token"): Rule(PUBLIC, login=True),
    # Own tokens for everyone (someone else's: 404), any account's for admins.
    ("GET", "/api/v1/auth/tokens"): Rule(ALL),
    ("DELETE", "/api/v1/auth/tokens/{id}"): Rule(ALL, {"id": "person"}),
    ("GET", "/webhooks/vonage/inbound"): Rule(PUBLIC),
    ("POST", "/webhooks/vonage/inbound"): Rule(PUBLIC),
    ("GET", "/webhooks/vonage/status"): Rule(PUBLIC),
    ("POST", "/webhooks/vonage/status"): Rule(PUBLIC),
    ("GET", "/desabonnement/{token}"): Rule(PUBLIC),
    ("POST", "/desabonnement/{token}"): Rule(PUBLIC),
    ("GET", "/static"): Rule(PUBLIC),
    ("GET", "/connexion"): Rule(PUBLIC),
    ("POST", "/connexion"): Rule(PUBLIC, login=True),
    # API: people
    ("GET", "/api/v1/people"): Rule(MANAGERS),
    ("GET", "/api/v1/people/{id}"): Rule(ALL),
    ("PATCH", "/api/v1/people/{id}"): Rule(ALL),
    ("DELETE", "/api/v1/people/{id}"): Rule(MANAGERS, VICTIM_PERSON),
    ("GET", "/api/v1/people/{id}/export"): Rule(MANAGERS),
    ("POST", "/api/v1/imports"): Rule(MANAGERS),
    # API: audiences and templates
    ("POST", "/api/v1/audiences"): Rule(MANAGERS),
    ("POST", "/api/v1/audiences/count"): Rule(MANAGERS),
    ("GET", "/api/v1/audiences"): Rule(MANAGERS),
    ("GET", "/api/v1/audiences/{id}"): Rule(MANAGERS),
    ("GET", "/api/v1/audiences/{id}/members"): Rule(MANAGERS),
    ("GET", "/api/v1/templates"): Rule(MANAGERS),
    ("POST", "/api/v1/templates"): Rule(MANAGERS),
    ("GET", "/api/v1/templates/{id}"): Rule(MANAGERS),
    ("PUT", "/api/v1/templates/{id}"): Rule(MANAGERS),
    ("POST", "/api/v1/templates/preview"): Rule(MANAGERS),
    # API: campaigns
    ("GET", "/api/v1/campaigns"): Rule(MANAGERS),
    ("POST", "/api/v1/campaigns"): Rule(MANAGERS),
    ("GET", "/api/v1/campaigns/{id}"): Rule(MANAGERS),
    ("POST", "/api/v1/campaigns/{id}/preview-launch"): Rule(MANAGERS),
    ("POST", "/api/v1/campaigns/{id}/launch"): Rule(MANAGERS),
    ("POST", "/api/v1/campaigns/{id}/pause"): Rule(MANAGERS),
    ("POST", "/api/v1/campaigns/{id}/resume"): Rule(MANAGERS),
    ("POST", "/api/v1/campaigns/{id}/cancel"): Rule(MANAGERS),
    ("POST", "/api/v1/campaigns/{id}/unconfirmed/resend"): Rule(MANAGERS),
    ("POST", "/api/v1/campaigns/{id}/unconfirmed/close"): Rule(MANAGERS),
    ("POST", "/api/v1/campaigns/{id}/test-send"): Rule(MANAGERS),
    ("GET", "/api/v1/campaigns/{id}/messages"): Rule(MANAGERS),
    ("GET", "/api/v1/campaigns/{id}/messages.csv"): Rule(MANAGERS),
    # API: queues and escalations (a caseworker within the queues they work)
    ("GET", "/api/v1/queues"): Rule(ALL),
    ("GET", "/api/v1/escalations"): Rule(ALL),
    ("GET", "/api/v1/escalations/{id}"): Rule(ALL),
    ("POST", "/api/v1/queues/{queue}/next"): Rule(ALL),
    ("POST", "/api/v1/escalations/{id}/claim"): Rule(ALL),
    ("POST", "/api/v1/escalations/{id}/notes"): Rule(ALL),
    # The replies inbox is the coordinators'; whoever sees a reply may correct its label.
    ("GET", "/api/v1/replies"): Rule(MANAGERS),
    ("POST", "/api/v1/replies/read"): Rule(MANAGERS),
    ("POST", "/api/v1/replies/{id}/label"): Rule(ALL),
    ("POST", "/api/v1/escalations/{id}/snooze"): Rule(ALL),
    ("POST", "/api/v1/escalations/{id}/resolve"): Rule(ALL),
    ("POST", "/api/v1/escalations/{id}/reopen"): Rule(ALL),
    # API: call campaigns (a caller within their own calls and their campaigns' pools)
    ("GET", "/api/v1/campaigns/{id}/calls"): Rule(MANAGERS, CALL_CAMPAIGN),
    ("POST", "/api/v1/calls/next"): Rule(CALLERS),
    ("GET", "/api/v1/calls/{id}"): Rule(CALLERS),
    ("POST", "/api/v1/calls/{id}/outcome"): Rule(CALLERS),
    ("POST", "/api/v1/calls/{id}/release"): Rule(CALLERS),
    ("GET", "/api/v1/campaigns/{id}/callers"): Rule(MANAGERS, CALL_CAMPAIGN),
    ("PUT", "/api/v1/campaigns/{id}/callers"): Rule(MANAGERS, CALL_CAMPAIGN),
    ("GET", "/api/v1/campaigns/{id}/coverage"): Rule(MANAGERS, CALL_CAMPAIGN),
    # Pages
    ("POST", "/deconnexion"): Rule(CALLERS, logout=True),
    ("GET", "/mot-de-passe"): Rule(CALLERS),
    ("POST", "/mot-de-passe"): Rule(CALLERS),
    ("GET", "/"): Rule(CALLERS, lands={BENE: "/appels"}),
    ("GET", "/personnes"): Rule(MANAGERS),
    ("GET", "/personnes/{id}"): Rule(MANAGERS),
    ("GET", "/personnes/{id}/modifier"): Rule(MANAGERS),
    ("POST", "/personnes/{id}/modifier"): Rule(MANAGERS),
    ("GET", "/personnes/{id}/effacer"): Rule(MANAGERS),
    ("POST", "/personnes/{id}/effacer"): Rule(MANAGERS),
    ("GET", "/imports"): Rule(MANAGERS),
    ("POST", "/imports"): Rule(MANAGERS),
    ("GET", "/imports/{job}"): Rule(MANAGERS),
    ("GET", "/imports/{job}/etat"): Rule(MANAGERS),
    ("GET", "/imports/{job}/rapport.csv"): Rule(MANAGERS),
    ("GET", "/publics"): Rule(MANAGERS),
    ("POST", "/publics"): Rule(MANAGERS),
    ("GET", "/publics/{id}"): Rule(MANAGERS),
    ("GET", "/modeles"): Rule(MANAGERS),
    ("GET", "/modeles/nouveau"): Rule(MANAGERS),
    ("POST", "/modeles"): Rule(MANAGERS),
    ("GET", "/modeles/{id}"): Rule(MANAGERS),
    ("POST", "/modeles/{id}"): Rule(MANAGERS),
    ("GET", "/campagnes"): Rule(MANAGERS),
    ("GET", "/campagnes/nouvelle"): Rule(MANAGERS),
    ("POST", "/campagnes"): Rule(MANAGERS),
    ("GET", "/campagnes/{id}/lancement"): Rule(MANAGERS),
    ("POST", "/campagnes/{id}/lancer"): Rule(MANAGERS),
    ("GET", "/campagnes/{id}"): Rule(MANAGERS),
    ("GET", "/campagnes/{id}/etat"): Rule(MANAGERS),
    ("POST", "/campagnes/{id}/pause"): Rule(MANAGERS),
    ("POST", "/campagnes/{id}/reprendre"): Rule(MANAGERS),
    ("POST", "/campagnes/{id}/annuler"): Rule(MANAGERS),
    ("POST", "/campagnes/{id}/non-confirmes/renvoyer"): Rule(MANAGERS),
    ("POST", "/campagnes/{id}/non-confirmes/classer"): Rule(MANAGERS),
    ("GET", "/files"): Rule(ALL),
    ("GET", "/files/{queue}"): Rule(ALL),
    ("POST", "/files/{queue}/suivant"): Rule(ALL),
    ("GET", "/reponses"): Rule(MANAGERS),
    ("POST", "/reponses/lues"): Rule(MANAGERS),
    ("POST", "/reponses/{id}/etiquette"): Rule(ALL),
    ("GET", "/admin/modele"): Rule(ADMINS),
    ("GET", "/situations/{id}"): Rule(ALL),
    ("POST", "/situations/{id}/prendre"): Rule(ALL),
    ("POST", "/situations/{id}/note"): Rule(ALL),
    ("POST", "/situations/{id}/cloturer"): Rule(ALL),
    ("POST", "/situations/{id}/reporter"): Rule(ALL),
    ("POST", "/situations/{id}/rouvrir"): Rule(ALL),
    ("GET", "/journal"): Rule(ADMINS),
    ("GET", "/equipe"): Rule(ADMINS),
    ("POST", "/equipe"): Rule(ADMINS),
    ("POST", "/equipe/{id}/files"): Rule(ADMINS, VICTIM_STAFF),
    ("POST", "/equipe/{id}/activation"): Rule(ADMINS, VICTIM_STAFF),
    ("GET", "/envoyes"): Rule(MANAGERS),
    ("POST", "/envoyes/reponse"): Rule(MANAGERS),
    ("GET", "/appels"): Rule(CALLERS),
    ("POST", "/appels/suivant"): Rule(CALLERS),
    ("GET", "/appels/{id}"): Rule(CALLERS),
    ("POST", "/appels/{id}/issue"): Rule(CALLERS),
    ("POST", "/appels/{id}/reposer"): Rule(CALLERS),
    ("GET", "/campagnes/{id}/couverture"): Rule(MANAGERS, CALL_CAMPAIGN),
    ("POST", "/campagnes/{id}/appelants"): Rule(MANAGERS, CALL_CAMPAIGN),
}

# Which row fills `{id}` under each path prefix.
ID_KINDS = (
    ("/api/v1/people/", "person"),
    ("/personnes/", "person"),
    ("/api/v1/audiences/", "audience"),
    ("/publics/", "audience"),
    ("/api/v1/templates/", "template"),
    ("/modeles/", "template"),
    ("/api/v1/campaigns/", "campaign"),
    ("/campagnes/", "campaign"),
    ("/api/v1/escalations/", "escalation"),
    ("/api/v1/replies/", "reply"),
    ("/reponses/", "reply"),
    ("/situations/", "escalation"),
    ("/equipe/", "victim_staff"),
    ("/api/v1/calls/", "call"),
    ("/appels/", "call"),
)


async def _rows(runtime) -> dict[str, str]:
    """Real rows for every kind of path parameter."""
    actor = Actor(None, "test")
    person = await Person.create(
        last_name="MATRICE",
        first_name="Alice",
        identity_key="matrice|alice|",
        mobile="+33611111111",
    )
    victim = await Person.create(last_name="EFFACEE", identity_key="effacee||")
    audience, _ = await audiences.create_audience("Tous", {}, actor=actor)
    template = await store.create_template(
        "Matrice", "sms", store.TemplateContent("Bonjour {{ person.first_name }}"), actor=actor
    )
    campaign = await campaign_service.create_campaign(
        name="Matrice",
        channel="sms",
        template_id=template.id,
        audience_id=audience.id,
        actor=actor,
        settings=runtime.settings,
        now=runtime.clock(),
        sender="+33612000000",
    )
    escalation = await Escalation.create(
        person_id=person.id,
        msisdn=person.mobile,
        queue="urgence",
        priority=3,
        open_key=f"p{person.id}:urgence",
        due_at=datetime.now(UTC) + timedelta(hours=1),
    )
    reply = await Reply.create(
        provider_message_id="matrice-1",
        msisdn=person.mobile,
        text="merci",
        received_at=datetime.now(UTC),
        person_id=person.id,
        label="thanks",
        processed_at=datetime.now(UTC),
    )
    victim_staff, _ = await staff_service.create_staff("victime@ccas.test", Role.CASEWORKER)
    job = import_pages.ImportJob(
        id="matrice", staff_id=0, filename="r.csv", segment="domicilies", dry_run=True
    )
    job.state = "done"
    job.report = {
        "created": 0,
        "updated": 0,
        "unchanged": 0,
        "rejected": [{"line": 2, "reason": "missing_name", "detail": "Nom absent"}],
        "warnings": [],
        "rows": 1,
        "encoding": "utf-8",
    }
    import_pages._remember(job)
    # A running call campaign with the caseworker and the volunteer as callers: one call in
    # its pool, one given to the volunteer (so that their allowed checks read a real sheet).
    await fragile_register(2)
    call, _ = await call_campaign(
        runtime, callers=[f"{CASE}@ccas.test", f"{BENE}@ccas.test"], recurrence_days=None
    )
    volunteer = await Staff.get(email=f"{BENE}@ccas.test")
    given = await CallTask.filter(campaign_id=call.id).order_by("id").first()
    assert given is not None and await CallTask.filter(campaign_id=call.id).count() == 2
    await CallTask.filter(id=given.id).update(assignee_id=volunteer.id)
    return {
        "person": str(person.id),
        "victim_person": str(victim.id),
        "audience": str(audience.id),
        "template": str(template.id),
        "campaign": str(campaign.id),
        "escalation": str(escalation.id),
        "reply": str(reply.id),
        "victim_staff": str(victim_staff.id),
        "job": job.id,
        "queue": "urgence",
        "token": "jeton-invalide",
        "call_campaign": str(call.id),
        "call": str(given.id),
    }


def _fill(path: str, rule: Rule, rows: dict[str, str]) -> str:
    if path == "/static":
        return "/static/app.css"

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in rule.ids:
            return rows[rule.ids[name]]
        if name == "id":
            kind = next(kind for prefix, kind in ID_KINDS if path.startswith(prefix))
            return rows[kind]
        return rows[name]

    return re.sub(r"\{(\w+)\}", value, path)


class Visitor:
    """One browser-like session (cookie jar) logged in as one role, or anonymous."""

    def __init__(self, client: TestClient, role: str) -> None:
        self.client = client
        self.role = role
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.token = ""

    async def start(self) -> None:
        html = await (await self.session.get(self.client.make_url("/connexion"))).text()
        self.token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
        if self.role == "anonymous":
            return
        response = await self.session.post(
            self.client.make_url("/connexion"),
            data={
                "email": f"{self.role}@ccas.test",
                "password": PASSWORD,
                "csrf_token": self.token,
            },
            allow_redirects=False,
        )
        assert response.status == 302, f"login as {self.role}"
        html = await (await self.session.get(self.client.make_url("/"))).text()
        self.token = re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)

    async def call(self, method: str, path: str) -> aiohttp.ClientResponse:
        kwargs: dict = {"allow_redirects": False, "headers": {"X-CSRF-Token": self.token}}
        if method in ("POST", "PUT", "PATCH", "DELETE") and path.startswith("/api/"):
            kwargs["json"] = {}
        response = await self.session.request(method, self.client.make_url(path), **kwargs)
        await response.read()
        if path == "/deconnexion" and self.role != "anonymous":
            await self.start()  # logged out on purpose: log in again for the next routes
        return response


def _problem(method: str, path: str, rule: Rule, role: str, response) -> str | None:
    status = response.status
    location = response.headers.get("Location", "")
    if status >= 500:
        return f"server error {status}"
    if rule.roles is None:
        if not rule.login and status in (401, 403):
            return f"public route answered {status}"
        return None
    if role == "anonymous":
        if path.startswith("/api/"):
            return None if status == 401 else f"expected 401, got {status}"
        ok = status == 302 and location.startswith("/connexion")
        return None if ok else f"expected the login page, got {status} {location}"
    if role in rule.lands:
        expected = (302, rule.lands[role])
        return None if (status, location) == expected else f"expected {expected}, got {status}"
    if role in rule.roles and rule.logout:
        return None if (status, location) == (302, "/connexion") else f"no logout: {status}"
    if role in rule.roles:
        if status in (401, 403) or location.startswith("/connexion"):
            return f"allowed role refused: {status} {location}"
        return None
    return None if status == 403 else f"expected 403, got {status}"


async def test_every_route_against_every_role(client, tokens) -> None:
    runtime = client.app[RUNTIME]
    rows = await _rows(runtime)
    registered: list[tuple[str, str]] = []
    for route in client.app.router.routes():
        key = (route.method, route.resource.canonical)
        if route.method == "HEAD":
            # aiohttp adds HEAD beside GET; it must follow its GET's rule.
            assert ("GET", key[1]) in ROUTES, f"HEAD without a declared GET: {key}"
            continue
        registered.append(key)
    missing = [key for key in registered if key not in ROUTES]
    assert not missing, f"routes missing from the role matrix: {missing}"
    visitors = {role: Visitor(client, role) for role in ROLES_IN_ORDER}
    problems: list[str] = []
    seen: dict[tuple[str, str, str], int] = {}
    try:
        for visitor in visitors.values():
            await visitor.start()
        for method, canonical in registered:
            rule = ROUTES[(method, canonical)]
            path = _fill(canonical, rule, rows)
            for role in ROLES_IN_ORDER:
                response = await visitors[role].call(method, path)
                seen[(role, method, path)] = response.status
                problem = _problem(method, path, rule, role, response)
                if problem:
                    problems.append(f"{role:12} {method:6} {path}: {problem}")
    finally:
        for visitor in visitors.values():
            await visitor.session.close()
    assert not problems, "\n".join(problems)
    # The volunteer's allowed checks read their real call, not a 404 that proves nothing.
    call = rows["call"]
    assert seen[(BENE, "GET", f"/appels/{call}")] == 200
    assert seen[(BENE, "GET", f"/api/v1/calls/{call}")] == 200
    assert len(registered) >= 80  # pages and API alike were walked


def test_api_and_pages_guard_with_one_role_table() -> None:
    # The same group object everywhere: a role added to a group reaches API and pages alike.
    groups = (
        staff_service.ADMINS,
        staff_service.MANAGERS,
        staff_service.ALL_ROLES,
        staff_service.CALLERS,
    )
    guarded = [spec.roles for router in routes.api_routers() for spec in router.routes]
    guarded += [route.roles for router in routes.page_routers() for route in router.routes]
    guarded += [item.roles for item in NAV]
    strays = [
        roles for roles in guarded if roles is not None and not any(roles is g for g in groups)
    ]
    assert not strays
    assert {frozenset(r.value for r in g) for g in groups} == {ADMINS, MANAGERS, ALL, CALLERS}

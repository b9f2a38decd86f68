"""The e-mail unsubscribe link: a French page that asks, and a POST that opts the address out.

The GET only shows a button: mail scanners that follow links must not unsubscribe anyone.
The POST also serves RFC 8058 one-click unsubscription (List-Unsubscribe-Post).
"""

from __future__ import annotations

import html

from aiohttp import web

from campaigns.core.audit import Actor
from campaigns.registry.optouts import opt_out, read_unsubscribe_token
from campaigns.web.http import ApiRouter
from campaigns.web.keys import RUNTIME

router = ApiRouter("unsubscribe")
PATH = "/desabonnement/{token}"
LINK_ACTOR = Actor(None, "lien de désabonnement")


def _page(title: str, body: str, status: int = 200) -> web.Response:
    text = (
        "<!doctype html><html lang=fr><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f'<meta name=robots content="noindex"><title>{html.escape(title)}</title></head>'
        f"<body><main><h1>{html.escape(title)}</h1>{body}</main></body></html>"
    )
    return web.Response(status=status, text=text, content_type="text/html")


def _address(request: web.Request) -> str | None:
    secret = request.app[RUNTIME].settings.signing_key
    return read_unsubscribe_token(secret, request.match_info["token"])


def _invalid() -> web.Response:
    return _page(
        "Lien invalide",
        "<p>Ce lien de désabonnement n'est pas valide. "
        "Contactez le CCAS pour ne plus recevoir nos messages.</p>",
        status=404,
    )


async def confirm_page(request: web.Request) -> web.Response:
    if _address(request) is None:
        return _invalid()
    ccas = html.escape(request.app[RUNTIME].settings.ccas_name)
    return _page(
        "Se désabonner",
        f"<p>Vous ne souhaitez plus recevoir de messages du {ccas} à cette adresse ?</p>"
        '<form method="post"><button type="submit">Confirmer le désabonnement</button></form>',
    )


async def unsubscribe(request: web.Request) -> web.Response:
    address = _address(request)
    if address is None:
        return _invalid()
    await opt_out(address, source="unsubscribe_link", actor=LINK_ACTOR)
    ccas = html.escape(request.app[RUNTIME].settings.ccas_name)
    return _page(
        "Désabonnement confirmé",
        f"<p>Vous ne recevrez plus de messages du {ccas} à cette adresse.</p>"
        "<p>Pour vous réinscrire, contactez le CCAS.</p>",
    )


router.route("GET", PATH, summary="Page de désabonnement", roles=None)(confirm_page)
router.route("POST", PATH, summary="Confirmer le désabonnement", roles=None)(unsubscribe)

"""What both Vonage webhooks share: reading and checking the parameters."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from multidict import MultiDictProxy

from campaigns.core.runtime import Runtime
from campaigns.web.errors import error_response
from providers.vonage.payloads import (
    PayloadError,
    decode_json_body,
    is_empty_probe,
    merge_request_params,
)
from providers.vonage.signatures import SignatureError, verify_signature

__all__ = ["FORM_TYPES", "Checked", "check_request", "read_params"]

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def read_params(request: web.Request) -> dict[str, str]:
    """The flat Vonage parameters from the query string, a form or a JSON body."""
    form: MultiDictProxy[str | bytes | bytearray | web.FileField] | None = None
    body: object | None = None
    if request.method == "POST" and request.body_exists:
        content_type = request.content_type
        if content_type == "application/json" or content_type.endswith("+json"):
            body = decode_json_body(await request.read())
        elif content_type in FORM_TYPES:
            form = await request.post()
        elif (await request.read()).strip():
            raise PayloadError("unsupported_content_type", "type de contenu non pris en charge")
    return merge_request_params(request.query, form, body)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Checked:
    """A webhook request whose parameters were read and whose signature holds."""

    params: dict[str, str]
    # To record once the request's effect is stored (not before: Vonage's retry of a
    # request that failed with a 5xx carries the same nonce).
    nonce: str
    # The signature: the same nonce with the same signature is the same request again
    # (Vonage retrying after a lost answer), not a replay.
    fingerprint: str = ""

    @property
    def signed(self) -> bool:
        """The signature was checked: Vonage sent it, whatever its content."""
        return bool(self.fingerprint)


async def check_request(request: web.Request, runtime: Runtime) -> Checked | web.Response:
    """Read and verify a Vonage webhook; a Response (probe, 400, 401) ends the handling."""
    settings = runtime.settings
    try:
        params = await read_params(request)
    except PayloadError as exc:
        return error_response(request, 400, exc.code, exc.detail)
    if is_empty_probe(params):
        return web.json_response({"status": "ok"})
    nonce = ""
    if settings.vonage_signature_secret:
        try:
            verify_signature(
                params,
                secret=settings.vonage_signature_secret,
                method=settings.vonage_signature_method,
                now=runtime.clock(),
            )
        except SignatureError as exc:
            return error_response(request, 401, exc.code, exc.detail)
        nonce = params.get("nonce", "").strip()
        return Checked(params, nonce, params.get("sig", "").strip().lower() or "signed")
    return Checked(params, nonce)

"""A local Vonage SMS API emulator: answers like Vonage, misbehaves on demand, posts receipts.

It speaks TLS because the SDK always calls `https://{rest_host}/sms/json`. Tests and the
benchmark drive it through the real SDK; `python -m providers.emulator` runs it alone.
The receipts it sends back are posted by `providers.emulator_receipts`.

Fault switches, for the fault-injection tests: `throttle_per_second` (status 1),
`http_status_next`, `drop_connection_next` (the request is read, then the socket closed:
it may have left), and an outage (`go_down` / `come_back`, or POST /_emulator/outage):
new connections are refused and a request on a connection already open is answered 503.
Every request that reached the emulator is in `received`, with what it answered; only
those with status "0" (or a partial refusal) reached a phone (`delivered_to`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import dataclasses
import itertools
import json
import random
import secrets
import signal
import ssl
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import web

from providers.base import estimate_sms_parts
from providers.emulator_receipts import DLR_FORMATS, ReceiptPoster
from providers.tls import make_self_signed

__all__ = ["ERROR_TEXTS", "EmulatorConfig", "VonageEmulator"]

# SMS API status codes and the texts Vonage answers with.
ERROR_TEXTS = {
    1: "Throughput Rate Exceeded - please wait [ 1000 ] and retry",
    2: "Missing Parameters",
    3: "Invalid Parameters",
    4: "Bad Credentials",
    5: "Internal Error",
    6: "Invalid Message",
    7: "Number Barred",
    8: "Partner Account Barred",
    9: "Partner Quota Violation",
    12: "Message too long",
    14: "Invalid Signature",
    15: "Invalid Sender Address",
    29: "Non-Whitelisted Destination",
    33: "Number de-activated",
}

# Receipt err-code sent with each final status unless `dlr_status_for` says "status:code".
_DLR_ERR_CODES = {"delivered": "0", "accepted": "0", "buffered": "0", "expired": "1"}
_DLR_ERR_CODES |= {"failed": "99", "rejected": "6", "unknown": "1"}


@dataclass
class EmulatorConfig:
    """How the emulator behaves; change fields at any time (or POST /_emulator/config)."""

    api_key: str = "emulator-key"
    api_secret: str = "emulator-secret"
    throttle_per_second: int = 0  # 0: no limit; above it status 1
    fail_numbers: dict[str, int] = field(default_factory=dict)  # number -> status code
    partial_fail_numbers: dict[str, int] = field(default_factory=dict)  # last part refused
    fail_rate: float = 0.0  # share of requests answered with fail_rate_status
    fail_rate_status: int = 5
    seed: int = 20240601
    latency_ms: int = 0
    drop_connection_next: int = 0  # read and record, then close the socket without answering
    http_status_next: list[int] = field(default_factory=list)  # e.g. [429, 500]
    price_per_part: str = "0.04870000"
    network: str = "20801"
    balance: str = "100.00000000"
    dlr_url: str | None = None
    dlr_delay_ms: int = 50
    dlr_format: str = "json"  # json | form | get
    dlr_status_for: dict[str, str] = field(default_factory=dict)  # number -> "failed[:code]"
    dlr_signature_secret: str | None = None
    dlr_signature_method: str = "sha256"  # md5hash | md5 | sha1 | sha256 | sha512
    dlr_retries: int = 3
    dlr_retry_cap: float = 2.0  # longest wait between two tries of a receipt (s)
    dlr_concurrency: int = 8


def _digits(number: str) -> str:
    return number.strip().lstrip("+")


def _lookup(table: dict[str, Any], number: str) -> Any:
    digits = _digits(number)
    if digits in table:
        return table[digits]
    return table.get("+" + digits)


class VonageEmulator:
    """The emulator server; one instance per test, or per process with the CLI."""

    def __init__(self, config: EmulatorConfig | None = None, *, cert_dir: Path) -> None:
        self.config = config or EmulatorConfig()
        self.cert_dir = Path(cert_dir)
        self.received: list[dict[str, Any]] = []
        self.port = 0
        self.rest_host = ""
        self.ca_file: Path | None = None
        self._rng = random.Random(self.config.seed)
        self._id_prefix = secrets.token_hex(4).upper()
        self._ids = itertools.count(1)
        self._balance = Decimal(self.config.balance)
        self._window_second = -1
        self._window_count = 0
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._ssl: ssl.SSLContext | None = None
        self._host = "127.0.0.1"
        self.down = False
        self._receipts = ReceiptPoster(self.config)

    @property
    def dlr_sent(self) -> int:
        """Delivery receipts posted and acknowledged."""
        return self._receipts.sent

    @property
    def dlr_failures(self) -> int:
        """Delivery receipts given up (refused, unreachable, or no room in the queue)."""
        return self._receipts.failures

    @property
    def dlr_refusals(self) -> dict[int, int]:
        """Answers to receipt posts that were not 2xx, by HTTP status (each retried)."""
        return dict(self._receipts.refusals)

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        cert, key = make_self_signed(self.cert_dir)
        self.ca_file = cert
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        app = web.Application()
        app.router.add_post("/sms/json", self._handle_sms)
        app.router.add_get("/sms/json", self._handle_sms)
        app.router.add_get("/_emulator/received", self._handle_received)
        app.router.add_delete("/_emulator/received", self._handle_clear)
        app.router.add_get("/_emulator/config", self._handle_get_config)
        app.router.add_post("/_emulator/config", self._handle_set_config)
        app.router.add_post("/_emulator/outage", self._handle_outage)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=5.0
        )
        await self._runner.setup()
        self._ssl, self._host = context, host
        site = web.TCPSite(self._runner, host, port, ssl_context=context, backlog=512)
        await site.start()
        self._site = site
        server = site._server  # aiohttp exposes no public way to read an ephemeral port
        assert isinstance(server, asyncio.Server) and server.sockets
        self.port = server.sockets[0].getsockname()[1]
        self.rest_host = f"{host}:{self.port}"
        await self._receipts.start()

    async def go_down(self) -> None:
        """An outage: new connections refused, requests on open ones answered 503."""
        self.down = True
        if self._site is not None:
            await self._site.stop()  # closes the listening socket only
            self._site = None

    async def come_back(self) -> None:
        """The end of an outage: listening again on the same port."""
        self.down = False
        if self._site is None and self._runner is not None:
            site = web.TCPSite(
                self._runner, self._host, self.port, ssl_context=self._ssl, backlog=512
            )
            await site.start()
            self._site = site

    async def stop(self) -> None:
        await self._receipts.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def update(self, **changes: Any) -> None:
        """Change config fields by name (unknown names raise); a new seed resets the RNG."""
        names = {f.name for f in dataclasses.fields(EmulatorConfig)}
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"unknown emulator settings: {sorted(unknown)}")
        for name, value in changes.items():
            setattr(self.config, name, value)
        if "seed" in changes:
            self._rng = random.Random(self.config.seed)
        if "balance" in changes:
            self._balance = Decimal(self.config.balance)

    def clear(self) -> None:
        self.received.clear()
        self._receipts.reset_counts()

    async def drain_receipts(self) -> None:
        """Wait until every queued delivery receipt was posted (or given up)."""
        await self._receipts.drain()

    def delivered_to(self) -> Counter[str]:
        """How many messages reached each client-ref (accepted, at least in part)."""
        return Counter(
            r["client-ref"]
            for r in self.received
            if r["status"] == "0" or str(r["status"]).startswith("partial")
        )

    def counts(self) -> dict[str, Any]:
        return {
            "count": len(self.received),
            "by_to": dict(Counter(r["to"] for r in self.received)),
            "by_client_ref": dict(Counter(r["client-ref"] for r in self.received)),
            "dlr_sent": self.dlr_sent,
            "dlr_failures": self.dlr_failures,
        }

    # -- the SMS API -------------------------------------------------------------------------
    async def _read_params(self, request: web.Request) -> dict[str, str]:
        params = dict(request.query)
        if request.method == "POST":
            if request.content_type == "application/json":
                body = await request.json()
                params.update({k: _as_text(v) for k, v in body.items()})
            else:
                params.update({k: str(v) for k, v in (await request.post()).items()})
        return params

    def _authorised(self, request: web.Request, params: dict[str, str]) -> bool:
        key, secret = params.get("api_key"), params.get("api_secret")
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            with contextlib.suppress(binascii.Error, UnicodeDecodeError, ValueError):
                key, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        return key == self.config.api_key and secret == self.config.api_secret

    def _throttled(self) -> bool:
        limit = self.config.throttle_per_second
        if limit <= 0:
            return False
        second = int(time.monotonic())
        if second != self._window_second:
            self._window_second, self._window_count = second, 0
        self._window_count += 1
        return self._window_count > limit

    async def _handle_sms(self, request: web.Request) -> web.StreamResponse:
        params = await self._read_params(request)
        cfg = self.config
        record: dict[str, Any] = {
            "to": params.get("to", ""),
            "from": params.get("from", ""),
            "text": params.get("text", ""),
            "type": params.get("type", "text"),
            "client-ref": params.get("client-ref", ""),
            "status-report-req": params.get("status-report-req", ""),
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "status": None,
        }
        self.received.append(record)
        if self.down:
            record["status"] = "down"
            headers: dict[str, str] | None = {"Connection": "close", "Retry-After": "1"}
            body = {"type": "emulator", "title": "HTTP 503"}
            return web.json_response(body, status=503, headers=headers)
        if cfg.latency_ms > 0:
            await asyncio.sleep(cfg.latency_ms / 1000)
        if cfg.drop_connection_next > 0:
            cfg.drop_connection_next -= 1
            record["status"] = "dropped"
            return _drop_connection(request)
        if cfg.http_status_next:
            status = cfg.http_status_next.pop(0)
            record["status"] = f"http-{status}"
            headers = {"Retry-After": "1"} if status == 429 else None
            body = {"type": "emulator", "title": f"HTTP {status}"}
            return web.json_response(body, status=status, headers=headers)
        code = self._refusal(request, params)
        if code is not None:
            record["status"] = str(code)
            return _answer([_error_entry(record["to"], code)])
        return self._accept(record, params)

    def _refusal(self, request: web.Request, params: dict[str, str]) -> int | None:
        """The status code refusing the whole request, or None to accept it."""
        cfg = self.config
        if not self._authorised(request, params):
            return 4
        if not params.get("to") or not params.get("from") or "text" not in params:
            return 2
        if self._throttled():
            return 1
        forced = _lookup(cfg.fail_numbers, params["to"])
        if forced is not None:
            return int(forced)
        if cfg.fail_rate > 0 and self._rng.random() < cfg.fail_rate:
            return cfg.fail_rate_status
        return None

    def _accept(self, record: dict[str, Any], params: dict[str, str]) -> web.Response:
        cfg = self.config
        parts = estimate_sms_parts(record["text"], record["type"] == "unicode")
        partial = _lookup(cfg.partial_fail_numbers, record["to"]) if parts > 1 else None
        price = Decimal(cfg.price_per_part)
        to = _digits(record["to"])
        entries: list[dict[str, str]] = []
        for index in range(parts):
            if partial is not None and index == parts - 1:
                entries.append(_error_entry(to, int(partial)))
                continue
            self._balance -= price
            message_id = f"{self._id_prefix}{next(self._ids):08X}"
            entry = {
                "to": to,
                "message-id": message_id,
                "status": "0",
                "remaining-balance": f"{self._balance:.8f}",
                "message-price": f"{price:.8f}",
                "network": cfg.network,
            }
            if record["client-ref"]:
                entry["client-ref"] = record["client-ref"]
            entries.append(entry)
            if cfg.dlr_url and params.get("status-report-req", "true").lower() not in (
                "false",
                "0",
            ):
                self._queue_receipt(record, entry)
        record["status"] = "0" if partial is None else f"partial-{partial}"
        record["message-ids"] = [e["message-id"] for e in entries if "message-id" in e]
        return _answer(entries)

    # -- delivery receipts -----------------------------------------------------------------
    def _queue_receipt(self, record: dict[str, Any], entry: dict[str, str]) -> None:
        cfg = self.config
        status = _lookup(cfg.dlr_status_for, record["to"]) or "delivered"
        status, _, err_code = str(status).partition(":")
        receipt = {
            "msisdn": entry["to"],
            "to": record["from"],
            "network-code": cfg.network,
            "messageId": entry["message-id"],
            "price": entry["message-price"],
            "status": status,
            "err-code": err_code or _DLR_ERR_CODES.get(status, "99"),
            "client-ref": record["client-ref"],
            "api-key": cfg.api_key,
        }
        self._receipts.post_later(receipt)

    # -- control endpoints -----------------------------------------------------------------
    async def _handle_received(self, request: web.Request) -> web.Response:
        return web.json_response({**self.counts(), "messages": self.received})

    async def _handle_clear(self, request: web.Request) -> web.Response:
        self.clear()
        return web.json_response({"count": 0})

    async def _handle_outage(self, request: web.Request) -> web.Response:
        try:
            down = bool((await request.json())["down"])
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": "bad_outage", "detail": str(exc)}, status=400)
        await (self.go_down() if down else self.come_back())
        return web.json_response({"down": self.down})

    async def _handle_get_config(self, request: web.Request) -> web.Response:
        return web.json_response(dataclasses.asdict(self.config))

    async def _handle_set_config(self, request: web.Request) -> web.Response:
        try:
            changes = await request.json()
            self.update(**changes)
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": "bad_config", "detail": str(exc)}, status=400)
        return web.json_response(dataclasses.asdict(self.config))


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _error_entry(to: str, code: int) -> dict[str, str]:
    return {"to": _digits(to), "status": str(code), "error-text": ERROR_TEXTS.get(code, "Error")}


def _answer(entries: list[dict[str, str]]) -> web.Response:
    body = {"message-count": str(len(entries)), "messages": entries}
    return web.Response(text=json.dumps(body), content_type="application/json")


def _drop_connection(request: web.Request) -> web.StreamResponse:
    """Close the socket after the request was read, the way a crashed proxy would.

    A clean close (TLS close_notify then FIN) is what the client reports as
    RemoteDisconnected: the very case the SDK re-sends by itself.
    """
    transport = request.transport
    if transport is not None:
        transport.close()
    # Nothing can be written any more; aiohttp drops this response on the closed transport.
    return web.Response(status=204)


# -- command line ------------------------------------------------------------------------------
def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m providers.emulator",
        description="Émulateur local de l'API SMS de Vonage (TLS).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--cert-dir", type=Path, required=True, help="certificat auto-signé")
    parser.add_argument("--api-key", default=EmulatorConfig.api_key)
    parser.add_argument("--api-secret", default=EmulatorConfig.api_secret)
    parser.add_argument("--dlr-url", help="URL où poster les accusés de réception")
    parser.add_argument("--dlr-format", choices=DLR_FORMATS, default="json")
    parser.add_argument("--dlr-delay-ms", type=int, default=EmulatorConfig.dlr_delay_ms)
    parser.add_argument("--dlr-signature-secret")
    parser.add_argument("--dlr-signature-method", default="sha256")
    parser.add_argument(
        "--dlr-concurrency",
        type=int,
        default=EmulatorConfig.dlr_concurrency,
        help="envois parallèles",
    )
    parser.add_argument("--throttle", type=int, default=0, help="SMS par seconde (0 : illimité)")
    parser.add_argument("--latency-ms", type=int, default=0)
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    config = EmulatorConfig(
        api_key=args.api_key,
        api_secret=args.api_secret,
        throttle_per_second=args.throttle,
        latency_ms=args.latency_ms,
        dlr_url=args.dlr_url,
        dlr_format=args.dlr_format,
        dlr_delay_ms=args.dlr_delay_ms,
        dlr_signature_secret=args.dlr_signature_secret,
        dlr_signature_method=args.dlr_signature_method,
        dlr_concurrency=args.dlr_concurrency,
    )
    emulator = VonageEmulator(config, cert_dir=args.cert_dir)
    await emulator.start(args.host, args.port)
    print("Émulateur Vonage prêt.", flush=True)
    print(f"rest_host={emulator.rest_host}", flush=True)
    print(f"ca_file={emulator.ca_file}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await emulator.stop()
        print(f"Arrêt : {len(emulator.received)} requête(s) reçue(s).", flush=True)


def main(argv: list[str] | None = None) -> None:
    asyncio.run(_serve(_parse_args(argv)))


if __name__ == "__main__":
    main()

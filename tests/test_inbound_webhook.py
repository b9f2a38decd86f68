"""The inbound SMS webhook: the three request forms, signatures, duplicates, long SMS in parts."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient, TestServer

from campaigns.core.nonce_store import RedisNonceStore
from campaigns.core.runtime import Runtime
from campaigns.core.settings import Settings
from campaigns.models import Escalation, InboundPart, Person, Reply
from campaigns.replies.intake import MISSING_PART, finalise_incomplete, receive_inbound
from campaigns.web.app import create_app
from providers.vonage.payloads import parse_inbound
from providers.vonage.signatures import SIGNATURE_METHODS, sign_params
from tests.services import REDIS_URL, require_redis
from workers.runtime import build_runtime, close_runtime

EXAMPLES_FILE = Path(__file__).resolve().parent / "data" / "vonage_webhooks.json"
EXAMPLES = json.loads(EXAMPLES_FILE.read_text("utf-8"))
SECRET = EXAMPLES["signature_secret"]
INBOUND = EXAMPLES["inbound"]
SIGNED = EXAMPLES["signed_inbound"]
URL = "/webhooks/vonage/inbound"
# The signed examples carry a fixed timestamp: the app's clock is set to it.
SIGNED_AT = datetime.fromtimestamp(int(SIGNED["sha256"]["timestamp"]), UTC)


class RecordingQueue:
    """A JobQueue that keeps what was queued, with arq's rule that a job id is queued once."""

    def __init__(self) -> None:
        self.jobs: list[tuple[str, tuple[Any, ...], str | None]] = []

    async def enqueue(
        self, function: str, *args: Any, job_id: str | None = None, defer_by: float | None = None
    ) -> bool:
        if job_id is not None and any(job[2] == job_id for job in self.jobs):
            return False
        self.jobs.append((function, args, job_id))
        return True

    async def close(self) -> None:
        return None


class App:
    def __init__(self, client: TestClient, runtime: Runtime, queue: RecordingQueue) -> None:
        self.client = client
        self.runtime = runtime
        self.queue = queue

    async def send(self, form: str, params: dict[str, str]) -> Any:
        """Send params as Vonage would: GET query, POST form or POST JSON."""
        if form == "get":
            return await self.client.get(URL, params=params)
        if form == "form":
            return await self.client.post(URL, data=params)
        return await self.client.post(URL, json=params)


MakeApp = Callable[..., Awaitable[App]]


@pytest.fixture
async def make_app(db: str, tmp_path: Path) -> AsyncIterator[MakeApp]:
    made: list[App] = []

    async def make(*, clock: datetime | None = None, **env: str) -> App:
        settings = Settings(
            CAMPAIGNS_DATABASE_URL=db,
            CAMPAIGNS_OUTBOX_DIR=str(tmp_path / "outbox"),
            CAMPAIGNS_SECRET_KEY="k" * 32,
            _env_file=None,  # type: ignore[call-arg]
            **env,
        )
        runtime = await build_runtime(settings)
        queue = RecordingQueue()
        runtime.queue = queue
        if clock is not None:
            runtime.clock = lambda: clock
        client = TestClient(TestServer(create_app(runtime)))
        await client.start_server()
        made.append(App(client, runtime, queue))
        return made[-1]

    yield make
    for app in made:
        await app.client.close()
        await close_runtime(app.runtime)


def signed(params: dict[str, str], method: str = "sha256", at: datetime = SIGNED_AT) -> dict:
    unsigned = {k: v for k, v in params.items() if k not in ("sig", "timestamp", "nonce")}
    return sign_params(unsigned, SECRET, method, int(at.timestamp()), uuid.uuid4().hex)


FORMS = ("get", "form", "json")
# Signature checks happen before the database: one engine is enough for them.
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.mark.parametrize("form", FORMS)
async def test_unsigned_request_is_stored_and_queued_in_every_form(
    make_app: MakeApp, form: str
) -> None:
    """A plain inbound SMS answers 204, stores one unprocessed reply and queues its job."""
    app = await make_app()
    response = await app.send(form, INBOUND["unicode"])
    assert response.status == 204
    reply = await Reply.get(provider_message_id="1000000001A2B3C5")
    assert reply.msisdn == "+33612345678"
    assert reply.to == "33644630000"
    assert reply.text == "Merci 😊 à demain"
    assert reply.received_at == datetime(2026, 11, 20, 9, 15, 2, tzinfo=UTC)
    assert reply.processed_at is None and reply.label is None
    assert reply.payload["keyword"] == "MERCI"
    assert app.queue.jobs == [("process_reply", (reply.id,), f"process_reply:{reply.id}")]


@sqlite_only
@pytest.mark.parametrize("method", SIGNATURE_METHODS)
async def test_vonage_signed_examples_verify_with_each_method(
    make_app: MakeApp, method: str
) -> None:
    """Vonage's own signed examples (fixed clock) pass with the method configured."""
    app = await make_app(
        clock=SIGNED_AT, VONAGE_SIGNATURE_SECRET=SECRET, VONAGE_SIGNATURE_METHOD=method
    )
    response = await app.send("form", SIGNED[method])
    assert response.status == 204, await response.text()
    assert await Reply.filter(provider_message_id="1000000001A2B3C4").count() == 1


@sqlite_only
@pytest.mark.parametrize("form", FORMS)
async def test_signed_request_in_every_form(make_app: MakeApp, form: str) -> None:
    app = await make_app(
        clock=SIGNED_AT, VONAGE_SIGNATURE_SECRET=SECRET, VONAGE_SIGNATURE_METHOD="sha512"
    )
    response = await app.send(form, signed(INBOUND["text"], "sha512"))
    assert response.status == 204
    assert await Reply.filter(provider_message_id="1000000001A2B3C4").count() == 1


@sqlite_only
@pytest.mark.parametrize(
    ("case", "clock", "change", "code"),
    [
        ("tampered text", SIGNED_AT, {"text": "STOP"}, "bad_signature"),
        ("tampered sig", SIGNED_AT, {"sig": "0" * 64}, "bad_signature"),
        ("no signature", SIGNED_AT, {"sig": ""}, "missing_signature"),
        ("six minutes late", SIGNED_AT + timedelta(minutes=6), {}, "stale_timestamp"),
        ("six minutes early", SIGNED_AT - timedelta(minutes=6), {}, "stale_timestamp"),
    ],
)
async def test_bad_signatures_are_refused_with_401(
    make_app: MakeApp, case: str, clock: datetime, change: dict[str, str], code: str
) -> None:
    app = await make_app(
        clock=clock, VONAGE_SIGNATURE_SECRET=SECRET, VONAGE_SIGNATURE_METHOD="sha256"
    )
    params = {**SIGNED["sha256"], **change}
    if not params["sig"]:
        del params["sig"]
    response = await app.send("json", params)
    assert response.status == 401, case
    body = await response.json()
    assert body["error"] == code and body["detail"]
    assert await Reply.all().count() == 0
    assert app.queue.jobs == []


@sqlite_only
async def test_an_identical_retry_is_answered_but_a_reused_nonce_is_refused(
    make_app: MakeApp,
) -> None:
    """Vonage's identical retry of a stored request (same nonce, same signature) gets a
    204: its first answer may have been lost. Another request reusing the nonce is a 401."""
    app = await make_app(
        clock=SIGNED_AT, VONAGE_SIGNATURE_SECRET=SECRET, VONAGE_SIGNATURE_METHOD="md5hash"
    )
    first = await app.send("get", SIGNED["md5hash"])
    again = await app.send("form", SIGNED["md5hash"])
    assert (first.status, again.status) == (204, 204)
    assert await Reply.all().count() == 1
    unsigned = {k: v for k, v in SIGNED["md5hash"].items() if k not in ("sig", "timestamp")}
    other = sign_params(
        {**unsigned, "text": "autre chose", "messageId": "OTHER-1"},
        SECRET,
        "md5hash",
        int(SIGNED_AT.timestamp()),
        SIGNED["md5hash"]["nonce"],
    )
    replay = await app.send("json", other)
    assert replay.status == 401
    assert (await replay.json())["error"] == "replayed_nonce"


@sqlite_only
async def test_replay_is_seen_across_processes_through_redis(make_app: MakeApp) -> None:
    """Two web processes sharing Redis: the identical retry sent to the other one is
    answered, a request reusing the nonce with other content is refused."""
    require_redis()
    from redis.asyncio import Redis

    redis = Redis.from_url(REDIS_URL)
    prefix = f"test:inbound:{uuid.uuid4().hex}:"
    try:
        env = {"VONAGE_SIGNATURE_SECRET": SECRET, "VONAGE_SIGNATURE_METHOD": "sha1"}
        apps = [await make_app(clock=SIGNED_AT, **env) for _ in range(2)]
        for app in apps:
            app.runtime.nonce_store = RedisNonceStore(redis, prefix=prefix)
        params = signed(INBOUND["text"], "sha1")
        assert (await apps[0].send("form", params)).status == 204
        assert (await apps[1].send("form", params)).status == 204
        unsigned = {k: v for k, v in params.items() if k not in ("sig", "timestamp", "nonce")}
        other = sign_params(
            {**unsigned, "messageId": "OTHER-2"},
            SECRET,
            "sha1",
            int(SIGNED_AT.timestamp()),
            params["nonce"],
        )
        assert (await apps[1].send("form", other)).status == 401
        assert await Reply.filter(provider_message_id=params["messageId"]).count() == 1
    finally:
        keys = [key async for key in redis.scan_iter(match=prefix + "*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


async def test_duplicate_message_id_makes_one_reply(make_app: MakeApp) -> None:
    """Vonage retries (same messageId, any form): one reply, one processing job."""
    app = await make_app()
    statuses = [(await app.send(form, INBOUND["text"])).status for form in FORMS]
    assert statuses == [204, 204, 204]
    assert await Reply.filter(provider_message_id="1000000001A2B3C4").count() == 1
    assert len(app.queue.jobs) == 1


@sqlite_only
async def test_probe_and_malformed_requests(make_app: MakeApp) -> None:
    """An empty probe gets 200; malformed requests a 400 with a reason; the app carries on."""
    app = await make_app()
    probe = await app.client.get(URL)
    assert probe.status == 200
    cases = [
        ({k: v for k, v in INBOUND["text"].items() if k != "msisdn"}, "missing_field"),
        ({**INBOUND["text"], "msisdn": "not-a-number"}, "bad_number"),
        ({**INBOUND["concat_parts"][0], "concat-part": "3"}, "bad_concat"),
        ({**INBOUND["text"], "message-timestamp": "hier"}, "bad_timestamp"),
    ]
    for params, code in cases:
        response = await app.send("form", params)
        assert response.status == 400
        body = await response.json()
        assert body["error"] == code and body["detail"]
    bad_json = await app.client.post(
        URL, data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert bad_json.status == 400 and (await bad_json.json())["error"] == "bad_json"
    not_an_object = await app.client.post(URL, json=["msisdn"])
    assert not_an_object.status == 400
    conflicting = await app.client.post(f"{URL}?msisdn=33600000000", data=INBOUND["text"])
    assert (await conflicting.json())["error"] == "conflicting_param"
    assert await Reply.all().count() == 0
    assert (await app.send("json", INBOUND["text"])).status == 204


def _part(number: int, total: int, text: str, ref: str = "77") -> dict[str, str]:
    return {
        **INBOUND["concat_parts"][0],
        "messageId": f"2000000000{ref}{number:02d}",
        "concat-ref": ref,
        "concat-total": str(total),
        "concat-part": str(number),
        "text": text,
    }


async def test_parts_out_of_order_and_repeated_make_one_reply(make_app: MakeApp) -> None:
    """Part 2, then part 1, then part 2 again: one complete reply, queued once."""
    app = await make_app()
    first, second = INBOUND["concat_parts"]
    assert (await app.send("json", second)).status == 204
    assert await Reply.all().count() == 0
    assert app.queue.jobs == []
    assert (await app.send("form", first)).status == 204
    assert (await app.send("get", second)).status == 204
    reply = await Reply.get()
    assert reply.text == first["text"] + second["text"]
    assert reply.text.startswith("Bonjour, je vous reponds") and reply.text.endswith("merci")
    assert reply.provider_message_id == first["messageId"]
    assert (reply.parts, reply.complete) == (2, True)
    assert reply.msisdn == "+33612345678" and reply.to == "33644630000"
    assert [p["concat-part"] for p in reply.payload["parts"]] == ["1", "2"]
    # The first part's own time, as Vonage gave it, not when we stored it.
    assert reply.received_at == datetime(2026, 11, 20, 9, 15, 2, tzinfo=UTC)
    assert await InboundPart.filter(assembled=False).count() == 0
    assert len(app.queue.jobs) == 1


async def test_a_part_stored_as_the_bare_request_still_joins_its_reply(make_app: MakeApp) -> None:
    """A part row holding only Vonage's request (as stored before the provider's time was
    kept beside it) is assembled with the others all the same."""
    app = await make_app()
    first, second = INBOUND["concat_parts"]
    await InboundPart.create(
        provider_message_id=first["messageId"],
        msisdn="+33612345678",
        concat_ref=first["concat-ref"],
        total=2,
        part=1,
        text=first["text"],
        payload=dict(first),
    )
    assert (await app.send("form", second)).status == 204
    reply = await Reply.get()
    assert reply.text == first["text"] + second["text"]
    assert reply.to == "33644630000"
    assert [p["concat-part"] for p in reply.payload["parts"]] == ["1", "2"]


@sqlite_only
async def test_three_parts_in_any_order(make_app: MakeApp) -> None:
    app = await make_app()
    texts = {1: "Je suis ", 2: "seule et ", 3: "j'ai froid"}
    for number in (3, 1, 2):
        assert (await app.send("form", _part(number, 3, texts[number]))).status == 204
    reply = await Reply.get()
    assert reply.text == "Je suis seule et j'ai froid"


async def test_a_reused_concat_ref_makes_a_new_reply(make_app: MakeApp) -> None:
    """Phones reuse concat-ref: a later long SMS with the same ref is a reply of its own."""
    app = await make_app()
    for number in (1, 2):
        await app.send("form", _part(number, 2, f"a{number}", ref="9"))
    later = [{**_part(n, 2, f"b{n}", ref="9"), "messageId": f"30000009{n}"} for n in (2, 1)]
    for params in later:
        await app.send("form", params)
    assert sorted(await Reply.all().values_list("text", flat=True)) == ["a1a2", "b1b2"]


async def test_incomplete_set_is_finalised_after_the_timeout(make_app: MakeApp) -> None:
    """Parts 1 and 3 of 3: nothing until ten minutes pass, then a reply marked incomplete."""
    start = datetime.now(UTC)
    app = await make_app(clock=start)
    await app.send("form", _part(3, 3, " fin"))
    await app.send("json", _part(1, 3, "début"))
    assert await finalise_incomplete(app.runtime) == []
    assert await Reply.all().count() == 0
    app.runtime.clock = lambda: start + timedelta(minutes=11)
    reply_ids = await finalise_incomplete(app.runtime)
    reply = await Reply.get()
    assert reply_ids == [reply.id]
    assert reply.text == f"début{MISSING_PART} fin"
    assert (reply.parts, reply.complete) == (3, False)
    assert app.queue.jobs == [("process_reply", (reply.id,), f"process_reply:{reply.id}")]
    # A part arriving after that does not touch the finished reply: it waits, then is
    # finalised on its own, so its words still reach someone.
    await app.send("form", _part(2, 3, " milieu "))
    await finalise_incomplete(app.runtime)
    assert await Reply.all().count() == 1
    app.runtime.clock = lambda: start + timedelta(minutes=22)
    await finalise_incomplete(app.runtime)
    texts = await Reply.all().order_by("id").values_list("text", flat=True)
    assert texts == [f"début{MISSING_PART} fin", f"{MISSING_PART} milieu {MISSING_PART}"]


async def test_parts_stored_concurrently_make_one_reply(pg_db: str) -> None:
    """PostgreSQL, real concurrency: the last parts landing at once still make one reply."""
    now = datetime.now(UTC)
    for ref in range(20):
        parts = [parse_inbound(_part(n, 3, f"<{n}>", ref=str(100 + ref))) for n in (1, 2, 3)]
        results = await asyncio.gather(*(receive_inbound(p, now=now) for p in parts))
        assert len({r.reply_id for r in results if r.reply_id is not None}) == 1
    texts = await Reply.all().values_list("text", flat=True)
    assert len(texts) == 20 and set(texts) == {"<1><2><3>"}


async def test_storing_reports_new_and_duplicate(db: str) -> None:
    """A new messageId is inserted (no lookup); the same one again is reported a duplicate."""
    now = datetime.now(UTC)
    sms = parse_inbound(INBOUND["text"])
    first = await receive_inbound(sms, now=now)
    again = await receive_inbound(sms, now=now)
    assert (first.duplicate, again.duplicate) == (False, True)
    assert first.reply_id is not None and again.reply_id == first.reply_id  # still unprocessed
    await Reply.filter(id=first.reply_id).update(processed_at=now)
    assert (await receive_inbound(sms, now=now)).reply_id is None
    part = parse_inbound(INBOUND["concat_parts"][0])
    assert [(await receive_inbound(part, now=now)).duplicate for _ in range(2)] == [False, True]


async def test_end_to_end_through_the_in_process_queue(
    runtime: Runtime, client: TestClient
) -> None:
    """Webhook, queue, job: the callback request lands in `rappel`, matched to its sender."""
    from workers.inprocess import InProcessQueue

    assert isinstance(runtime.queue, InProcessQueue)
    someone = await Person.create(last_name="Durand", identity_key="durand", mobile="+33612345678")
    assert (await client.post(URL, data=INBOUND["text"])).status == 204
    await runtime.queue.run_until_idle()
    reply = await Reply.get(provider_message_id=INBOUND["text"]["messageId"])
    assert reply.processed_at is not None
    assert (reply.label, reply.person_id) == ("callback", someone.id)
    escalation = await Escalation.get(id=reply.escalation_id)
    assert (escalation.queue, escalation.reply_ids) == ("rappel", [reply.id])


async def test_oversized_fields_and_huge_concat_totals_get_a_400(make_app: MakeApp) -> None:
    """On both engines: what the columns cannot hold is refused with a reason (never a 500
    that Vonage would retry for a day), and a long SMS cannot announce 10^9 parts."""
    app = await make_app()
    text = INBOUND["text"]
    cases = [
        ({**text, "msisdn": "3" * 21}, "bad_number"),
        ({**text, "to": "3" * 21}, "too_long"),
        ({**text, "messageId": "A" * 65}, "too_long"),
        ({**text, "messageId": "AB\x00CD"}, "bad_param"),
        ({**text, "text": "x" * 2001}, "too_long"),
        (_part(1, 256, "début"), "bad_concat"),
        (_part(1, 999_999_999, "début"), "bad_concat"),
        (_part(3, 2, "fin"), "bad_concat"),
    ]
    for params, code in cases:
        for form in ("form", "json"):
            response = await app.send(form, params)
            assert response.status == 400, (code, form)
            assert (await response.json())["error"] == code
    assert await Reply.all().count() == 0 and await InboundPart.all().count() == 0
    # At the limits, everything is stored.
    widest = {**text, "to": "3" * 20, "messageId": "B" * 64, "text": "é" * 2000}
    assert (await app.send("json", widest)).status == 204
    assert (await app.send("form", _part(255, 255, "fin", ref="123456789"))).status == 204
    stored = await Reply.get(provider_message_id="B" * 64)
    assert (stored.to, len(stored.text)) == ("3" * 20, 2000)


@pytest.mark.parametrize("form", ["get", "form", "json"])
async def test_nul_characters_are_dropped_not_a_500(make_app: MakeApp, form: str) -> None:
    """PostgreSQL refuses NUL in text and jsonb: the reply and the long-SMS part are kept
    without it (and so is the payload)."""
    app = await make_app()

    async def send(params: dict[str, str]) -> int:
        if form != "form":
            return (await app.send(form, params)).status
        # aiohttp's client refuses a NUL in a form key: the body is encoded by hand.
        body = urlencode(params)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return (await app.client.post(URL, data=body, headers=headers)).status

    single = {**INBOUND["text"], "messageId": f"NUL-{form}", "text": "oui\x00 rappelez-moi"}
    single["extra\x00"] = "a\x00b"
    assert await send(single) == 204
    reply = await Reply.get(provider_message_id=f"NUL-{form}")
    assert reply.text == "oui rappelez-moi"
    assert "\x00" not in json.dumps(reply.payload) and reply.payload["extra"] == "ab"
    part = {**_part(1, 2, "je suis\x00 ", ref="55"), "messageId": f"NULPART-{form}"}
    assert await send(part) == 204
    stored = await InboundPart.get(provider_message_id=f"NULPART-{form}")
    assert stored.text == "je suis " and "\x00" not in json.dumps(stored.payload)

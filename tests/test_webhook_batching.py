"""The webhooks' group commit: shared INSERTs, answers only after the commit, failures kept
to their own batch, identical retries answered, odd signed content stored for a person."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from tortoise import connections

from campaigns.core.settings import Settings
from campaigns.models import DeliveryReceipt, Escalation, Reply
from campaigns.replies.intake_batch import ODD_RULE
from campaigns.web.webhooks import commit
from campaigns.web.webhooks.batcher import GroupCommit
from campaigns.web.webhooks.redis_batch import _kept
from providers.vonage.signatures import sign_params
from tests.services import REDIS_URL, require_redis
from tests.test_inbound_webhook import INBOUND, SECRET, SIGNED_AT, MakeApp, make_app, signed

__all__ = ["make_app"]  # the fixture, shared with test_inbound_webhook

STATUS_URL = "/webhooks/vonage/status"


def sms(n: int, run: str = "B") -> dict[str, str]:
    return {**INBOUND["text"], "messageId": f"{run}-{n:05d}", "text": f"message {n}"}


def receipt(n: int, status: str = "delivered") -> dict[str, str]:
    return {
        "msisdn": "33610000000",
        "to": "CCAS",
        "messageId": f"R-{n:05d}",
        "status": status,
        "err-code": "0",
        "message-timestamp": "2026-03-16 12:05:00",
        "api-key": "k",
    }


@contextlib.asynccontextmanager
async def services_in_redis(app: Any, tmp_path: Any, name: str) -> AsyncIterator[tuple[Any, str]]:
    """The app keeps its settings; its queue and nonces live in Redis for the block (a
    runtime of their own, under a queue name of their own, deleted after)."""
    from workers.runtime import build_runtime, close_runtime

    queue_name = f"test-{name}-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        CAMPAIGNS_DATABASE_URL=app.runtime.settings.database_url,
        CAMPAIGNS_REDIS_URL=REDIS_URL,
        CAMPAIGNS_QUEUE_NAME=queue_name,
        CAMPAIGNS_OUTBOX_DIR=str(tmp_path / "outbox"),
        CAMPAIGNS_SECRET_KEY="k" * 32,
        _env_file=None,  # type: ignore[call-arg]
    )
    redis_runtime = await build_runtime(settings)
    own = app.runtime.queue, app.runtime.nonce_store, app.runtime.redis
    try:
        app.runtime.queue = redis_runtime.queue
        app.runtime.nonce_store = redis_runtime.nonce_store
        app.runtime.redis = redis_runtime.redis
        yield redis_runtime, queue_name
    finally:
        pool = redis_runtime.queue.pool
        keys = [k async for k in pool.scan_iter(match=f"*{queue_name}*", count=1000)]
        if keys:
            await pool.delete(*keys)
        app.runtime.queue, app.runtime.nonce_store, app.runtime.redis = own
        await close_runtime(redis_runtime)


def replaying(params: dict[str, str], signed_request: dict[str, str]) -> dict[str, str]:
    """Other content, validly signed with the nonce (and time) of a request already sent."""
    stamp, nonce = int(signed_request["timestamp"]), signed_request["nonce"]
    return sign_params(params, SECRET, "sha256", stamp, nonce)


class InsertCounter:
    """Counts the INSERT statements sent to the database, by table: through the default
    client's pool or on a connection the webhooks keep between batches (its subclass)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tables: list[str] = []
        client_class = type(connections.get("default"))
        original = client_class.execute_query_dict

        async def counting(client: Any, sql: str, values: Any = None) -> Any:
            if sql.startswith("INSERT INTO"):
                self.tables.append(sql.split('"')[1])
            return await original(client, sql, values)

        monkeypatch.setattr(client_class, "execute_query_dict", counting)

    def count(self, table: str) -> int:
        return self.tables.count(table)


# --- the batcher alone ------------------------------------------------------------------


async def test_concurrent_items_share_batches_and_each_gets_its_result() -> None:
    seen: list[list[int]] = []

    async def flush(items: Sequence[int]) -> list[int]:
        seen.append(list(items))
        await asyncio.sleep(0.005)
        return [i * 10 for i in items]

    batcher: GroupCommit[int, int] = GroupCommit(flush, max_rows=50, max_wait=0.002)
    await batcher.start()
    try:
        results = await asyncio.gather(*(batcher.submit(i) for i in range(200)))
    finally:
        await batcher.stop()
    assert results == [i * 10 for i in range(200)]
    assert sorted(i for batch in seen for i in batch) == list(range(200))
    assert len(seen) <= 8 and max(len(b) for b in seen) == 50


async def test_a_failed_batch_fails_only_its_own_items() -> None:
    async def flush(items: Sequence[str]) -> list[str]:
        if "bad" in items:
            raise ConnectionError("database away")
        return [f"ok:{i}" for i in items]

    batcher: GroupCommit[str, str] = GroupCommit(flush, max_rows=3, max_wait=0, concurrency=1)
    await batcher.start()
    try:
        items = ["a", "b", "bad", "c", "d", "e"]
        results = await asyncio.gather(*(batcher.submit(i) for i in items), return_exceptions=True)
    finally:
        await batcher.stop()
    assert [isinstance(r, ConnectionError) for r in results] == [True] * 3 + [False] * 3
    assert results[3:] == ["ok:c", "ok:d", "ok:e"]


async def test_per_item_exceptions_and_stop_writes_what_waits() -> None:
    async def flush(items: Sequence[int]) -> list[int | BaseException]:
        return [ValueError(i) if i % 2 else i for i in items]

    batcher: GroupCommit[int, int] = GroupCommit(flush, max_wait=0.05)
    await batcher.start()
    pending = [asyncio.ensure_future(batcher.submit(i)) for i in range(4)]
    await asyncio.sleep(0)
    await batcher.stop()  # before max_wait is over: the waiting items are written
    results = await asyncio.gather(*pending, return_exceptions=True)
    assert results[0] == 0 and results[2] == 2
    assert isinstance(results[1], ValueError) and isinstance(results[3], ValueError)
    assert await batcher.submit(6) == 6  # stopped: a batch of one


# --- through the webhooks ---------------------------------------------------------------


async def test_many_concurrent_replies_make_few_inserts_and_all_are_stored(
    make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = await make_app()
    counter = InsertCounter(monkeypatch)
    statuses = await asyncio.gather(
        *(app.send(("get", "form", "json")[n % 3], sms(n)) for n in range(120))
    )
    assert [s.status for s in statuses] == [204] * 120
    assert await Reply.filter(provider_message_id__startswith="B-").count() == 120
    assert 0 < counter.count("reply") < 60, counter.tables
    assert len({job[2] for job in app.queue.jobs}) == 120
    batcher = app.client.app[commit.BATCHER]
    assert batcher.largest > 1


async def test_many_concurrent_receipts_make_few_inserts(
    make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = await make_app()
    counter = InsertCounter(monkeypatch)
    sent = [receipt(n % 60, ("accepted", "delivered")[n // 60]) for n in range(120)]
    sent += sent[:10]  # Vonage's retries, in the same flood
    answers = await asyncio.gather(*(app.client.post(STATUS_URL, data=p) for p in sent))
    assert [a.status for a in answers] == [200] * 130
    bodies = [await a.json() for a in answers]
    assert sum(b == {"status": "stored"} for b in bodies) == 120
    assert await DeliveryReceipt.filter(provider_message_id__startswith="R-").count() == 120
    assert 0 < counter.count("delivery_receipt") < 60, counter.tables


async def test_a_failing_batch_answers_503_to_its_requests_only(
    make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replies fail to store (the database is away for them); the receipts of the same
    moment are stored and answered. The replies' retries are then stored, not replays."""
    app = await make_app(
        clock=SIGNED_AT, VONAGE_SIGNATURE_SECRET=SECRET, VONAGE_SIGNATURE_METHOD="sha256"
    )
    real = commit.store_many

    async def down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("database unavailable")

    monkeypatch.setattr(commit, "store_many", down)
    replies = [signed(sms(n, "F")) for n in range(10)]
    receipts = [signed(receipt(n)) for n in range(10)]
    answers = await asyncio.gather(
        *(app.send("form", p) for p in replies),
        *(app.client.post(STATUS_URL, data=p) for p in receipts),
    )
    assert [a.status for a in answers[:10]] == [503] * 10
    assert all(a.headers["Retry-After"] for a in answers[:10])
    assert [a.status for a in answers[10:]] == [200] * 10
    assert await Reply.all().count() == 0
    monkeypatch.setattr(commit, "store_many", real)
    retried = await asyncio.gather(*(app.send("json", p) for p in replies))
    assert [a.status for a in retried] == [204] * 10
    assert await Reply.all().count() == 10


async def test_an_identical_receipt_retry_is_answered(make_app: MakeApp) -> None:
    app = await make_app(
        clock=SIGNED_AT, VONAGE_SIGNATURE_SECRET=SECRET, VONAGE_SIGNATURE_METHOD="sha512"
    )
    params = signed(receipt(1), "sha512")
    first = await app.client.post(STATUS_URL, data=params)
    again = await app.client.get(STATUS_URL, params=params)
    assert (first.status, await first.json()) == (200, {"status": "stored"})
    assert (again.status, await again.json()) == (200, {"status": "duplicate"})
    unsigned = {k: v for k, v in params.items() if k not in ("sig", "timestamp", "nonce")}
    reused = sign_params(
        {**unsigned, "status": "failed"}, SECRET, "sha512", int(SIGNED_AT.timestamp()),
        params["nonce"],
    )  # fmt: skip
    assert (await app.client.post(STATUS_URL, data=reused)).status == 401
    unsigned_request = await app.client.post(STATUS_URL, data=receipt(2))
    assert unsigned_request.status == 401


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"concat": "true", "concat-ref": "AB12", "concat-total": "2", "concat-part": "1"},
         "bad_concat"),
        ({"msisdn": None}, "missing_field"),
        ({"messageId": None, "message-timestamp": "hier"}, "missing_field"),
    ],
)  # fmt: skip
async def test_odd_signed_content_is_stored_raw_and_flagged(
    make_app: MakeApp, changes: dict[str, str | None], code: str
) -> None:
    app = await make_app(
        clock=SIGNED_AT, VONAGE_SIGNATURE_SECRET=SECRET, VONAGE_SIGNATURE_METHOD="sha256"
    )
    params = {**INBOUND["text"], "messageId": f"ODD-{uuid.uuid4().hex[:8]}"}
    for key, value in changes.items():
        if value is None:
            params.pop(key)
        else:
            params[key] = value
    request = signed(params)
    assert (await app.send("form", request)).status == 204
    assert (await app.send("get", request)).status == 204  # Vonage's retry: still one
    replies = await Reply.all()
    assert len(replies) == 1
    reply = replies[0]
    assert (reply.label, reply.rule, reply.read_at) == ("other", ODD_RULE, None)
    assert reply.payload["raw"]["sig"] == request["sig"]
    assert reply.payload["odd"]["code"] == code
    assert reply.processed_at is not None  # no automatic rule acts on it
    if "msisdn" in params:
        escalation = await Escalation.get(id=reply.escalation_id)
        assert escalation.queue == "triage"
    else:  # nobody to call about: it waits, unread, in the inbox
        assert reply.escalation_id is None
    assert app.queue.jobs == []


async def test_odd_content_is_still_refused_when_not_signed(make_app: MakeApp) -> None:
    app = await make_app(
        clock=SIGNED_AT, VONAGE_SIGNATURE_SECRET=SECRET, VONAGE_SIGNATURE_METHOD="sha256"
    )
    odd = {**INBOUND["text"], "concat": "true", "concat-ref": "AB", "concat-total": "2"}
    assert (await app.send("form", odd)).status == 401
    forged = {**signed(odd), "text": "autre"}
    assert (await app.send("form", forged)).status == 401
    assert await Reply.all().count() == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_jobs_and_nonces_go_to_redis_in_one_batch(
    make_app: MakeApp, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """With arq, the batch's jobs are written as arq's enqueue_job would write them."""
    require_redis()
    from arq.jobs import Job, JobStatus

    app = await make_app(
        clock=SIGNED_AT, VONAGE_SIGNATURE_SECRET=SECRET, VONAGE_SIGNATURE_METHOD="sha256"
    )
    async with services_in_redis(app, tmp_path, "batch") as (redis_runtime, queue_name):
        pool = redis_runtime.queue.pool
        requests = [signed(sms(n, "Q")) for n in range(30)]
        answers = await asyncio.gather(*(app.send("json", p) for p in requests))
        assert [a.status for a in answers] == [204] * 30
        again = await asyncio.gather(*(app.send("form", p) for p in requests[:5]))
        assert [a.status for a in again] == [204] * 5
        ids = await Reply.all().values_list("id", flat=True)
        assert await pool.zcard(queue_name) == 30
        job = Job(f"{queue_name}:process_reply:{ids[0]}", pool, _queue_name=queue_name)
        assert await job.status() == JobStatus.queued
        info = await job.info()
        assert info is not None and (info.function, info.args) == ("process_reply", (ids[0],))
        stored = await redis_runtime.redis.get(f"{queue_name}:nonce:{requests[0]['nonce']}")
        assert stored.decode() == requests[0]["sig"]
        # The same nonce on another (validly signed) SMS: a replay.
        replay = await app.send("json", replaying(sms(99, "Q"), requests[3]))
        assert replay.status == 401
        assert (await replay.json())["error"] == "replayed_nonce"


async def test_long_sms_parts_spread_over_concurrent_batches_make_whole_replies(
    make_app: MakeApp,
) -> None:
    app = await make_app()
    requests = []
    for n in range(30):
        for part in (1, 2, 3):
            requests.append(
                {
                    **INBOUND["concat_parts"][0],
                    "msisdn": f"3361000{n:04d}",
                    "messageId": f"L-{n:03d}-{part}",
                    "text": f"<{n}:{part}>",
                    "concat-ref": str(n % 7),
                    "concat-total": "3",
                    "concat-part": str(part),
                }
            )
    requests.reverse()
    answers = await asyncio.gather(*(app.send("form", p) for p in requests))
    assert [a.status for a in answers] == [204] * 90
    replies = await Reply.all().values("msisdn", "text", "complete")
    assert len(replies) == 30
    assert all(r["complete"] for r in replies)
    assert {r["text"] for r in replies} == {f"<{n}:1><{n}:2><{n}:3>" for n in range(30)}
    assert len({job[2] for job in app.queue.jobs}) == 30


async def test_an_unreadable_signed_receipt_is_acknowledged_not_refused(
    make_app: MakeApp,
) -> None:
    app = await make_app(
        clock=SIGNED_AT, VONAGE_SIGNATURE_SECRET=SECRET, VONAGE_SIGNATURE_METHOD="sha256"
    )
    answer = await app.client.post(STATUS_URL, data=signed({**receipt(1), "messageId": "A" * 80}))
    assert (answer.status, await answer.json()) == (200, {"status": "unreadable"})
    assert await DeliveryReceipt.all().count() == 0


async def test_a_flusher_that_dies_fails_its_waiting_items() -> None:
    async def flush(items: Sequence[int]) -> list[int]:
        return list(items)

    batcher: GroupCommit[int, int] = GroupCommit(flush, max_wait=0.01)
    await batcher.start()

    def broken() -> list[Any]:
        raise RuntimeError("bug")

    batcher._take = broken  # type: ignore[method-assign]
    waiting = asyncio.ensure_future(batcher.submit(1))
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(waiting, 2)
    assert await batcher.submit(2) == 2  # later ones are written alone
    await batcher.stop()


# --- waiting for more, kept connections, the webhooks' own edge -------------------------


async def test_a_batch_stops_waiting_when_nobody_else_comes() -> None:
    """A lone request is written after one quiet pause, not after the whole max_wait."""

    async def flush(items: Sequence[int]) -> list[int]:
        return list(items)

    batcher: GroupCommit[int, int] = GroupCommit(flush, max_wait=2.0, quiet=0.001)
    await batcher.start()
    try:
        began = asyncio.get_running_loop().time()
        assert await batcher.submit(1) == 1
        assert asyncio.get_running_loop().time() - began < 1.0
    finally:
        await batcher.stop()


async def test_batches_keep_one_connection_and_give_it_back_at_the_end(
    make_app: MakeApp, db: str
) -> None:
    """On PostgreSQL a batch writes on a connection kept between batches (no pool reset
    each time); it goes back to the pool when the app stops. SQLite keeps none."""
    app = await make_app()
    held = app.client.app[commit.HELD]
    for n in range(3):  # one after the other: the same connection each time
        assert (await app.send("form", sms(n, "K"))).status == 204
    stored = await Reply.filter(provider_message_id__startswith="K-").count()
    assert stored == 3
    assert held.held == (1 if db.startswith("postgres") else 0)
    await app.client.close()
    assert held.held == 0


async def test_a_failed_statement_gives_its_kept_connection_back(
    make_app: MakeApp, monkeypatch: pytest.MonkeyPatch, db: str
) -> None:
    app = await make_app()
    held = app.client.app[commit.HELD]

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("database away")

    monkeypatch.setattr(commit, "store_many", broken)
    assert (await app.send("form", sms(1, "F"))).status == 503
    assert held.held == 0  # back to the pool, which resets or discards it
    monkeypatch.undo()
    assert (await app.send("form", sms(2, "F"))).status == 204


async def test_webhooks_skip_the_session_but_keep_the_security_headers(
    make_app: MakeApp,
) -> None:
    """No session is read or written for Vonage (a stray cookie or token is ignored), and
    its answers carry the same security headers as every other answer."""
    app = await make_app()
    response = await app.client.post(
        STATUS_URL,
        data=receipt(1),
        headers={"Authorization": "Bearer not-a-token", "Cookie": "campaigns_session=junk"},
    )
    assert response.status == 200
    assert await response.json() == {"status": "stored"}
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert "Set-Cookie" not in response.headers
    for header in ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options"):
        assert header in response.headers
    assert (await app.client.get(STATUS_URL.replace("status", "nowhere"))).status == 404


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_receipt_nonces_in_redis_tell_a_retry_from_a_replay(
    make_app: MakeApp, tmp_path: Any
) -> None:
    """Receipts bring nonces and no job: their batch records the nonces with one command.
    Vonage's identical retry is answered again; the same nonce signed anew is a replay."""
    require_redis()
    app = await make_app(
        clock=SIGNED_AT, VONAGE_SIGNATURE_SECRET=SECRET, VONAGE_SIGNATURE_METHOD="sha256"
    )
    async with services_in_redis(app, tmp_path, "receipts") as (redis_runtime, queue_name):
        requests = [signed(receipt(n, "accepted")) for n in range(20)]
        answers = await asyncio.gather(*(app.client.post(STATUS_URL, data=p) for p in requests))
        assert [(a.status, await a.json()) for a in answers] == [(200, {"status": "stored"})] * 20
        retry = await app.client.post(STATUS_URL, data=requests[3])
        assert (retry.status, await retry.json()) == (200, {"status": "duplicate"})
        # The same nonce on another (validly signed) receipt: a replay.
        replay = await app.client.post(STATUS_URL, data=replaying(receipt(99), requests[3]))
        assert replay.status == 401
        assert (await replay.json())["error"] == "replayed_nonce"
        stored = await redis_runtime.redis.get(f"{queue_name}:nonce:{requests[0]['nonce']}")
        assert stored.decode() == requests[0]["sig"]
        # The connection the batches keep for their nonces, dropped by the server, is
        # opened again at once: the receipts are stored (a 2xx) and every nonce recorded.
        kept = _kept(redis_runtime.nonce_store.redis)
        await redis_runtime.redis.execute_command("CLIENT", "KILL", "ID", await kept.client_id())
        later = [signed(receipt(n, "accepted")) for n in (100, 101)]
        for params in later:
            assert (await app.client.post(STATUS_URL, data=params)).status == 200
        for params in later:
            assert await redis_runtime.redis.get(f"{queue_name}:nonce:{params['nonce']}")

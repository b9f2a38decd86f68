"""Dispatch: runs sent once, outcomes recorded, pause/resume/cancel, the send window, the queue."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from campaigns.core.runtime import Runtime
from campaigns.dispatch import lanes
from campaigns.models import (
    Campaign,
    CampaignRun,
    CampaignStatus,
    Message,
    MessagePart,
    MessageStatus,
    OptOut,
    Person,
)
from campaigns.rules.send_window import parse_send_window
from providers.console import read_outbox
from providers.emulator import EmulatorConfig, VonageEmulator
from providers.vonage.client import VonageSmsProvider
from tests.dispatch_runs import dispatch_runtime, paris, queue, run_dispatch
from tests.dispatch_support import T_MONDAY, Clock, counts, launch_campaign, make_run, mobile

M = MessageStatus


@pytest.fixture
def rt(runtime: Runtime) -> Runtime:
    """The test runtime on a fixed Monday morning, without a rate limit, small batches."""
    return dispatch_runtime(runtime)


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dispatch-tls")


@pytest.fixture
async def emulator(cert_dir: Path) -> AsyncIterator[VonageEmulator]:
    emu = VonageEmulator(EmulatorConfig(api_key="k", api_secret="s"), cert_dir=cert_dir)
    await emu.start()
    yield emu
    await emu.stop()


@pytest.fixture
async def vonage_rt(rt: Runtime, emulator: VonageEmulator) -> AsyncIterator[Runtime]:
    """The runtime sending through the real SDK to the emulator."""
    await rt.sms.close()  # type: ignore[union-attr]
    rt.sms = VonageSmsProvider(
        "k", "s", rest_host=emulator.rest_host, ca_file=str(emulator.ca_file), timeout=3
    )
    yield rt


async def test_a_run_sends_each_message_once_and_completes(rt: Runtime, db: str) -> None:
    """25 messages in batches of 10: all submitted once, parts stored, campaign completed."""
    campaign, run = await make_run(25)
    await run_dispatch(rt, run.id)

    assert await counts(campaign.id) == {"submitted": 25}
    outbox = read_outbox(rt.settings.outbox_dir, limit=100)
    assert len(outbox) == 25
    assert len({r["message_id"] for r in outbox}) == 25
    assert await MessagePart.all().count() == 25
    await campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.COMPLETED
    assert (await CampaignRun.get(id=run.id)).completed_at == T_MONDAY
    contacted = await Person.filter(last_contacted_at=T_MONDAY).count()
    assert contacted == 25
    message = await Message.filter(campaign_id=campaign.id).first()
    assert message is not None
    assert (message.attempts, message.sent_at, message.claimed_by) == (
        1,
        T_MONDAY,
        rt.coordination.worker_id,  # type: ignore[union-attr]
    )


async def test_an_address_that_opted_out_after_launch_is_never_sent(rt: Runtime, db: str) -> None:
    """A STOP recorded while the message was already queued: skipped at claim time, not sent."""
    campaign, run = await make_run(5)
    await OptOut.create(address=mobile(2), channel="sms", source="reply")
    await run_dispatch(rt, run.id)

    assert await counts(campaign.id) == {"submitted": 4, "skipped": 1}
    skipped = await Message.get(campaign_id=campaign.id, status=MessageStatus.SKIPPED)
    assert (skipped.address, skipped.skip_reason) == (mobile(2), "opted_out")
    sent_to = {r["to"] for r in read_outbox(rt.settings.outbox_dir, limit=100)}
    assert mobile(2) not in sent_to
    assert len(sent_to) == 4


async def test_launched_campaign_is_sent_through_the_same_jobs(rt: Runtime, db: str) -> None:
    """The lifecycle's launch enqueues dispatch_run; the in-process runner sends it all."""
    launched = await launch_campaign(rt, 12)
    run_id = launched["run"]["id"]
    assert queue(rt).pending[0][:3] == ("dispatch_run", (run_id,), f"dispatch:{run_id}")
    await queue(rt).run_until_idle()
    assert await counts(launched["campaign_id"]) == {"submitted": 12}
    assert (await Campaign.get(id=launched["campaign_id"])).status == CampaignStatus.COMPLETED


async def test_each_outcome_is_recorded_as_such(vonage_rt: Runtime, emulator, db: str) -> None:
    """Dropped connection -> unconfirmed, 503 -> retried later, invalid number -> failed."""
    rt = vonage_rt
    rt.dispatch.concurrency = 1  # one request at a time: the emulator's faults hit in order
    campaign, run = await make_run(6)
    emulator.update(drop_connection_next=1, http_status_next=[503], fail_numbers={mobile(2)[1:]: 3})
    q = await run_dispatch(rt, run.id)

    by_address = {m.address: m for m in await Message.filter(campaign_id=campaign.id)}
    dropped, retried, invalid = by_address[mobile(0)], by_address[mobile(1)], by_address[mobile(2)]
    assert dropped.status == M.UNCONFIRMED and "connexion perdue" in (dropped.error or "")
    assert retried.status == M.QUEUED and retried.attempts == 1
    assert retried.next_attempt_at is not None and retried.next_attempt_at > T_MONDAY
    assert invalid.status == M.FAILED
    assert invalid.error == "numéro invalide (vonage:3 Invalid Parameters)"
    assert [by_address[mobile(i)].status for i in (3, 4, 5)] == [M.SUBMITTED] * 3
    assert by_address[mobile(3)].price is not None
    # The run waits for the retry: a wake-up deferred to its time, not a failure.
    assert [d[0] for d in q.dropped] == ["dispatch_run"]
    assert (await Campaign.get(id=campaign.id)).status == CampaignStatus.RUNNING

    rt.clock.now = retried.next_attempt_at + timedelta(seconds=1)  # type: ignore[attr-defined]
    await run_dispatch(rt, run.id)
    await retried.refresh_from_db()
    assert (retried.status, retried.attempts) == (M.SUBMITTED, 2)
    sent = Counter(r["client-ref"] for r in emulator.received)
    assert sent[str(dropped.id)] == 1  # the unconfirmed one is never sent again
    assert sent[str(retried.id)] == 2  # refused with a 503, then accepted
    assert (await Campaign.get(id=campaign.id)).status == CampaignStatus.COMPLETED


async def test_transient_failures_give_up_after_max_attempts(
    vonage_rt: Runtime, emulator, db: str
) -> None:
    rt = vonage_rt
    rt.dispatch.max_attempts = 2
    campaign, run = await make_run(3)
    emulator.update(fail_numbers={mobile(1)[1:]: 5})  # Vonage's internal error: retryable
    await run_dispatch(rt, run.id)
    failing = await Message.get(address=mobile(1))
    assert failing.status == M.QUEUED
    rt.clock.now = failing.next_attempt_at + timedelta(seconds=1)  # type: ignore[attr-defined]
    await run_dispatch(rt, run.id)
    await failing.refresh_from_db()
    assert failing.status == M.FAILED and failing.attempts == 2
    assert failing.error is not None
    assert failing.error.startswith("abandon après 2 tentatives : erreur interne de Vonage")
    assert await counts(campaign.id) == {"submitted": 2, "failed": 1}
    assert (await Campaign.get(id=campaign.id)).status == CampaignStatus.COMPLETED


async def test_pause_stops_within_a_batch_and_resume_goes_on(rt: Runtime, db: str) -> None:
    campaign, run = await make_run(30)
    lane = lanes.Lane(rt, run.id)
    assert await lane.prepare()
    assert await lane.step() is None  # one batch of 10 sent
    await Campaign.filter(id=campaign.id).update(status=CampaignStatus.PAUSED)
    result = await lane.step()
    assert result is not None and result.reason == "paused"
    assert await counts(campaign.id) == {"submitted": 10, "queued": 20}

    await Campaign.filter(id=campaign.id).update(status=CampaignStatus.RUNNING)
    await run_dispatch(rt, run.id)
    assert await counts(campaign.id) == {"submitted": 30}
    outbox = read_outbox(rt.settings.outbox_dir, limit=100)
    assert sorted(Counter(r["message_id"] for r in outbox).values()) == [1] * 30


async def test_cancel_leaves_unsent_messages_cancelled(rt: Runtime, db: str) -> None:
    campaign, run = await make_run(25)
    lane = lanes.Lane(rt, run.id)
    assert await lane.prepare()
    assert await lane.step() is None
    await Campaign.filter(id=campaign.id).update(status=CampaignStatus.CANCELLED)
    result = await lane.step()
    assert result is not None and result.reason == "cancelled"
    assert await counts(campaign.id) == {"submitted": 10, "cancelled": 15}


async def test_high_failure_rate_pauses_the_campaign_and_says_why(
    vonage_rt: Runtime, emulator, db: str
) -> None:
    rt = vonage_rt
    rt.dispatch.batch_size = 60
    rt.dispatch.concurrency = 8
    campaign, run = await make_run(80)
    emulator.update(fail_numbers={mobile(i)[1:]: 3 for i in range(0, 60, 2)})  # half of 60
    await run_dispatch(rt, run.id)
    await campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.PAUSED
    assert campaign.status_reason == ("Mise en pause automatique : 50 % d'échecs (numéro invalide)")
    assert await counts(campaign.id) == {"failed": 30, "submitted": 30, "queued": 20}


# --- the send window, with a fixed clock -------------------------------------------------------


WINDOW_CASES = [
    # (window, now (Paris), sends a batch now?, next opening (Paris) when closed)
    ("mon-sat 09:00-19:00", paris(2026, 3, 14, 18, 59), True, None),  # Saturday 18:59
    ("mon-sat 09:00-19:00", paris(2026, 3, 14, 19, 0), False, paris(2026, 3, 16, 9, 0)),
    ("mon-sat 09:00-19:00", paris(2026, 3, 15, 12, 0), False, paris(2026, 3, 16, 9, 0)),
    ("mon-sat 09:00-19:00", paris(2026, 7, 14, 10, 0), False, paris(2026, 7, 15, 9, 0)),
    ("mon-sat 09:00-19:00", paris(2026, 3, 16, 8, 59), False, paris(2026, 3, 16, 9, 0)),
    ("always", paris(2026, 7, 14, 3, 0), True, None),
    ("always", paris(2026, 3, 15, 23, 30), True, None),
]


@pytest.mark.parametrize(("spec", "now", "sends", "opens"), WINDOW_CASES)
async def test_send_window_is_checked_before_each_batch(
    rt: Runtime, db: str, spec: str, now: datetime, sends: bool, opens: datetime | None
) -> None:
    rt.clock = Clock(now)
    rt.send_window = parse_send_window(spec, "Europe/Paris", "FR")
    campaign, run = await make_run(15)
    lane = lanes.Lane(rt, run.id)
    assert await lane.prepare()
    result = await lane.step()
    if sends:
        assert result is None
        assert await counts(campaign.id) == {"submitted": 10, "queued": 5}
    else:
        assert result == lanes.LaneResult("window", opens)
        assert await counts(campaign.id) == {"queued": 15}


async def test_a_run_started_saturday_evening_waits_for_monday(rt: Runtime, db: str) -> None:
    """Saturday 18:59: one batch leaves; at 19:00 the run defers itself to Monday 09:00."""
    clock = Clock(paris(2026, 3, 14, 18, 59))
    rt.clock = clock
    rt.send_window = parse_send_window("mon-sat 09:00-19:00", "Europe/Paris", "FR")
    campaign, run = await make_run(25)
    lane = lanes.Lane(rt, run.id)
    assert await lane.prepare()
    assert await lane.step() is None
    clock.now = paris(2026, 3, 14, 19, 0, 30)
    q = await run_dispatch(rt, run.id)
    monday = paris(2026, 3, 16, 9, 0)
    assert q.dropped == [
        (
            "dispatch_run",
            (run.id,),
            f"dispatch:{run.id}:wake:{int(monday.timestamp())}",
            (monday - clock.now).total_seconds(),
        )
    ]
    assert await counts(campaign.id) == {"submitted": 10, "queued": 15}
    assert (await Campaign.get(id=campaign.id)).status == CampaignStatus.RUNNING
    clock.now = monday
    await run_dispatch(rt, run.id)
    assert await counts(campaign.id) == {"submitted": 25}


async def test_a_campaign_window_overrides_the_default(rt: Runtime, db: str) -> None:
    rt.clock = Clock(paris(2026, 3, 16, 10, 0))  # Monday 10:00
    _, run = await make_run(5, send_window="mon-fri 14:00-17:00")
    lane = lanes.Lane(rt, run.id)
    assert await lane.prepare()
    assert await lane.step() == lanes.LaneResult("window", paris(2026, 3, 16, 14, 0))


# --- the in-process queue ---------------------------------------------------------------------


async def test_inprocess_queue_refuses_a_job_id_while_it_waits(rt: Runtime, db: str) -> None:
    q = queue(rt)
    assert await q.enqueue("dispatch_run", 1, job_id="dispatch:1")
    assert not await q.enqueue("dispatch_run", 1, job_id="dispatch:1")
    await q.run_until_idle()
    assert await q.enqueue("dispatch_run", 1, job_id="dispatch:1")  # free again once done


async def test_tick_nudges_unfinished_runs(rt: Runtime, db: str) -> None:
    campaign, _ = await make_run(5)
    from workers.jobs import tick

    report = await tick({"runtime": rt})
    assert {k: report[k] for k in ("started", "recovered", "nudged")} == {
        "started": 0,
        "recovered": 0,
        "nudged": 1,
    }
    await queue(rt).run_until_idle()
    assert await counts(campaign.id) == {"submitted": 5}

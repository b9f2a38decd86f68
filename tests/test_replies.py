"""Processing a stored reply: matching sender and campaign, classifying, routing to queues."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from arq import Retry

from campaigns.core.runtime import Runtime
from campaigns.models import (
    Campaign,
    CampaignRun,
    CampaignStatus,
    Escalation,
    Message,
    MessageStatus,
    OptOut,
    Person,
    Reply,
    Template,
    TemplateVersion,
)
from campaigns.replies.intake import RetryLater, receive_inbound
from campaigns.replies.routing import process_reply
from providers.base import Outcome, SendResult, SmsRequest
from providers.vonage.payloads import parse_inbound
from workers import reply_jobs

_ids = itertools.count(1)
NOW = datetime.now(UTC)


async def store(text: str, msisdn: str = "33612345678") -> int:
    """Store an inbound SMS as the webhook does and return the reply id."""
    sms = parse_inbound(
        {
            "msisdn": msisdn,
            "to": "33644630000",
            "messageId": f"TEST{next(_ids):012d}",
            "text": text,
            "type": "unicode",
            "message-timestamp": NOW.strftime("%Y-%m-%d %H:%M:%S"),
        }
    )
    received = await receive_inbound(sms, now=NOW)
    assert received.reply_id is not None
    return received.reply_id


async def person(last_name: str, mobile: str | None = None, **fields: object) -> Person:
    return await Person.create(
        last_name=last_name, first_name="Test", identity_key=last_name, mobile=mobile, **fields
    )


async def campaign_run(status: CampaignStatus = CampaignStatus.RUNNING) -> CampaignRun:
    template = await Template.create(name="Invitation", channel="sms")
    version = await TemplateVersion.create(template=template, version=1, body="Bonjour")
    campaign = await Campaign.create(
        name=f"Campagne {next(_ids)}", channel="sms", template_version=version, status=status
    )
    return await CampaignRun.create(campaign=campaign, number=1)


async def message(
    run: CampaignRun,
    person_id: int | None,
    address: str,
    status: MessageStatus = MessageStatus.DELIVERED,
    sent_at: datetime | None = None,
) -> Message:
    return await Message.create(
        run=run,
        campaign_id=run.campaign_id,  # type: ignore[attr-defined]
        person_id=person_id,
        channel="sms",
        address=address,
        status=status,
        sent_at=sent_at,
    )


async def escalation_of(reply_id: int) -> Escalation | None:
    reply = await Reply.get(id=reply_id)
    if reply.escalation_id is None:
        return None
    return await Escalation.get(id=reply.escalation_id)


ROUTES = [
    # text, label, queue (None: recorded, nobody called)
    ("Oui rappelez-moi svp", "callback", "rappel"),
    ("je suis tombée hier soir", "distress", "urgence"),
    ("c'est pour quoi exactement ?", "other", "triage"),
    ("Merci beaucoup, bonne journée", "thanks", None),
    ("STOP", "opt_out", None),
    ("stop merci", "opt_out", None),
    ("Désinscription", "opt_out", None),
    # An opt-out that says more is read by someone, even when no distress rule knows it.
    ("STOP je ne comprends rien à vos papiers", "opt_out", "triage"),
    ("STOP je me suis cassé la jambe", "distress", "urgence"),
    ("START", "other", None),
]


async def test_each_label_goes_to_its_queue(runtime: Runtime) -> None:
    """A known sender's reply is labelled and routed by the table (opt-out and thanks: no queue)."""
    for index, (text, label, queue) in enumerate(ROUTES):
        mobile = f"+3361000000{index}"
        someone = await person(f"Route{index}", mobile)
        reply_id = await store(text, mobile.removeprefix("+"))
        reply = await process_reply(runtime, reply_id)
        assert reply is not None and reply.processed_at is not None
        assert reply.label == label, text
        assert (reply.person_id, reply.candidate_ids) == (someone.id, [someone.id])
        escalation = await escalation_of(reply_id)
        if queue is None:
            assert escalation is None, text
            assert await Escalation.filter(msisdn=mobile).count() == 0
        else:
            assert escalation is not None and escalation.queue == queue, text
            assert escalation.person_id == someone.id
            assert reply_id in escalation.reply_ids


async def test_unknown_sender_is_recorded_and_lands_in_triage(runtime: Runtime) -> None:
    reply = await process_reply(runtime, await store("Bonjour, qui êtes-vous ?", "33699999999"))
    assert reply is not None
    assert (reply.person_id, reply.candidate_ids, reply.campaign_id) == (None, [], None)
    escalation = await escalation_of(reply.id)
    assert escalation is not None
    assert (escalation.queue, escalation.person_id, escalation.msisdn) == (
        "triage",
        None,
        "+33699999999",
    )


async def test_unknown_sender_in_distress_goes_to_urgence(runtime: Runtime) -> None:
    reply = await process_reply(runtime, await store("aidez moi je suis tombée", "33699999998"))
    escalation = await escalation_of(reply.id)  # type: ignore[union-attr]
    assert escalation is not None and escalation.queue == "urgence"


async def test_shared_number_makes_several_candidates(runtime: Runtime) -> None:
    """A couple sharing one phone: both are candidates, no person is picked, the queue knows."""
    shared = "+33612121212"
    husband = await person("Martin", shared)
    wife = await person("Martin-Durand", None, landline=shared)
    await person("Voisin", "+33613131313")
    reply = await process_reply(runtime, await store("rappelez moi", shared.removeprefix("+")))
    assert reply is not None
    assert reply.candidate_ids == [husband.id, wife.id]
    assert reply.person_id is None
    escalation = await escalation_of(reply.id)
    assert escalation is not None and escalation.queue == "rappel"
    assert escalation.multiple_candidates is True


async def test_reply_matches_the_latest_campaign_message_sent_to_that_number(
    runtime: Runtime,
) -> None:
    mobile = "+33614141414"
    someone = await person("Lefebvre", mobile)
    older, latest, not_sent, skipped = [await campaign_run() for _ in range(4)]
    await message(older, someone.id, mobile, sent_at=NOW - timedelta(days=9))
    expected = await message(latest, someone.id, mobile, sent_at=NOW - timedelta(days=2))
    await message(not_sent, someone.id, mobile, MessageStatus.QUEUED)
    await message(skipped, someone.id, mobile, MessageStatus.SKIPPED, sent_at=NOW)
    await message(latest, None, "+33600000001", sent_at=NOW)  # someone else's, later
    reply = await process_reply(runtime, await store("Merci !", mobile.removeprefix("+")))
    assert reply is not None
    assert (reply.message_id, reply.campaign_id) == (expected.id, latest.campaign_id)  # type: ignore[attr-defined]
    assert (reply.label, reply.person_id) == ("thanks", someone.id)
    # "Recorded on the person and the campaign": what the campaign's reply counts read.
    assert await Reply.filter(campaign_id=reply.campaign_id, label="thanks").count() == 1
    assert await Reply.filter(person_id=someone.id, label="thanks").count() == 1
    assert await escalation_of(reply.id) is None


async def test_number_no_longer_on_file_matches_the_person_we_wrote_to(runtime: Runtime) -> None:
    someone = await person("Roux", "+33615151515")
    run = await campaign_run()
    await message(run, someone.id, "+33616161616", sent_at=NOW - timedelta(hours=3))
    reply = await process_reply(runtime, await store("oui rappelez-moi", "33616161616"))
    assert reply is not None
    assert (reply.person_id, reply.candidate_ids) == (someone.id, [someone.id])


async def test_processing_twice_changes_nothing(runtime: Runtime) -> None:
    """A retried job (even after a crash before processed_at was written) acts once."""
    await person("Bernard", "+33617171717")
    reply_id = await store("je suis tombée, venez", "33617171717")
    first = await process_reply(runtime, reply_id)
    await Reply.filter(id=reply_id).update(processed_at=None)
    second = await process_reply(runtime, reply_id)
    assert first is not None and second is not None
    assert first.escalation_id == second.escalation_id
    assert await Escalation.all().count() == 1
    escalation = await Escalation.get(id=first.escalation_id)
    assert escalation.reply_ids == [reply_id]
    assert await process_reply(runtime, 999_999) is None


async def test_a_later_reply_joins_the_open_escalation(runtime: Runtime) -> None:
    await person("Petit", "+33618181818")
    first = await process_reply(runtime, await store("rappelez-moi", "33618181818"))
    second = await process_reply(runtime, await store("svp rappelez moi vite", "33618181818"))
    assert first is not None and second is not None
    assert first.escalation_id == second.escalation_id
    escalation = await Escalation.get(id=first.escalation_id)
    assert escalation.reply_ids == [first.id, second.id]


class RetryingSms:
    """An SMS provider that reports a transient failure (nothing sent), then accepts."""

    name = "retrying"

    def __init__(self) -> None:
        self.requests: list[SmsRequest] = []

    async def send_sms(self, req: SmsRequest) -> SendResult:
        self.requests.append(req)
        if len(self.requests) == 1:
            return SendResult(Outcome.RETRY, reason="vonage:1 Throttled", retry_after=5)
        return SendResult(Outcome.SUBMITTED, provider_ids=("id-1",))

    async def close(self) -> None:
        return None


async def test_job_wrapper_turns_a_transient_failure_into_an_arq_retry(runtime: Runtime) -> None:
    """The arq job retries when the confirmation could not leave, and sends it next time."""
    runtime.sms = sms = RetryingSms()
    reply_id = await store("STOP", "33619191919")
    ctx = {"runtime": runtime}
    with pytest.raises(Retry):
        await reply_jobs.process_reply(ctx, reply_id)
    # Everything but the confirmation is done; the retry only sends it.
    pending = await Reply.get(id=reply_id)
    assert pending.processed_at is not None and pending.confirmation_sent_at is None
    assert await reply_jobs.process_reply(ctx, reply_id) == "opt_out"
    assert await reply_jobs.process_reply(ctx, reply_id) == "opt_out"
    assert len(sms.requests) == 2
    assert sms.requests[0] == sms.requests[1]
    assert await reply_jobs.finalise_incomplete_replies(ctx) == 0


async def test_a_throttled_confirmation_never_holds_a_distress_reply_out_of_urgence(
    runtime: Runtime,
) -> None:
    """STOP + distress while Vonage throttles: opted out and in `urgence` at the first run;
    the retried job sends the confirmation alone and escalates nothing twice."""
    runtime.sms = sms = RetryingSms()
    someone = await person("Blanc", "+33619292929")
    reply_id = await store("STOP je suis tombée", "33619292929")
    ctx = {"runtime": runtime}
    with pytest.raises(Retry):
        await reply_jobs.process_reply(ctx, reply_id)
    escalation = await escalation_of(reply_id)
    assert escalation is not None
    assert (escalation.queue, escalation.person_id, escalation.reply_ids) == (
        "urgence",
        someone.id,
        [reply_id],
    )
    assert await OptOut.filter(address="+33619292929", active=True).exists()
    assert await reply_jobs.process_reply(ctx, reply_id) == "distress"
    assert len(sms.requests) == 2
    assert await Escalation.all().count() == 1
    assert (await Escalation.get(id=escalation.id)).reply_ids == [reply_id]


class ThrottledSms(RetryingSms):
    """A provider that stays throttled until told otherwise."""

    def __init__(self) -> None:
        super().__init__()
        self.throttled = True

    async def send_sms(self, req: SmsRequest) -> SendResult:
        self.requests.append(req)
        if self.throttled:
            return SendResult(Outcome.RETRY, reason="vonage:1 Throttled", retry_after=5)
        return SendResult(Outcome.SUBMITTED, provider_ids=("id-1",))


async def test_the_sweeper_requeues_a_confirmation_its_job_gave_up_on(runtime: Runtime) -> None:
    """arq gave up while Vonage was throttled: the minute cron requeues the confirmation
    (and only the one owed: a second STOP from the same address owes none)."""
    from campaigns.replies.intake import UNPROCESSED_GRACE, finalise_incomplete

    runtime.sms = sms = ThrottledSms()
    first = await store("STOP", "33619393939")
    with pytest.raises(RetryLater):
        await process_reply(runtime, first)
    second = await process_reply(runtime, await store("stop", "33619393939"))
    assert second is not None and second.processed_at is not None
    later = datetime.now(UTC) + UNPROCESSED_GRACE + timedelta(minutes=1)
    runtime.clock = lambda: later
    assert await finalise_incomplete(runtime) == [first]
    sms.throttled = False
    await process_reply(runtime, first)
    assert (await Reply.get(id=first)).confirmation_sent_at is not None
    assert [req.message_id for req in sms.requests] == [f"optout-{first}"] * 2
    assert await finalise_incomplete(runtime) == []

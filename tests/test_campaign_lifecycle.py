"""Campaign lifecycle: transitions, launch (skips, encodings, costs), cancel, sender warnings."""

from __future__ import annotations

from decimal import Decimal

import pytest

from campaigns.campaign import launch as campaign_launch
from campaigns.campaign import lifecycle as service
from campaigns.campaign import reports as campaign_reports
from campaigns.core.errors import Conflict, Invalid
from campaigns.core.runtime import Runtime
from campaigns.core.settings import Settings
from campaigns.models import (
    AuditEvent,
    Campaign,
    CampaignRun,
    CampaignStatus,
    Message,
    MessageStatus,
    OptOut,
)
from campaigns.registry.optouts import read_unsubscribe_token, unsubscribe_token
from campaigns.rules.sms_encoding import analyse
from tests.campaign_support import ACTOR, T0, campaign_runtime, make_campaign, person


@pytest.fixture
def rt(settings: Settings, db: str) -> Runtime:
    return campaign_runtime(settings)


# --- transitions -------------------------------------------------------------------------

S = CampaignStatus
# (status before, action, status after or None when the action is refused)
TRANSITION_TABLE = [
    (S.DRAFT, "launch", S.RUNNING),
    (S.SCHEDULED, "launch", S.RUNNING),
    (S.RUNNING, "launch", None),
    (S.PAUSED, "launch", None),
    (S.COMPLETED, "launch", None),
    (S.CANCELLED, "launch", None),
    (S.RUNNING, "pause", S.PAUSED),
    (S.DRAFT, "pause", None),
    (S.SCHEDULED, "pause", None),
    (S.PAUSED, "pause", None),
    (S.COMPLETED, "pause", None),
    (S.PAUSED, "resume", S.RUNNING),
    (S.RUNNING, "resume", None),
    (S.DRAFT, "resume", None),
    (S.CANCELLED, "resume", None),
    (S.DRAFT, "cancel", S.CANCELLED),
    (S.SCHEDULED, "cancel", S.CANCELLED),
    (S.RUNNING, "cancel", S.CANCELLED),
    (S.PAUSED, "cancel", S.CANCELLED),
    (S.COMPLETED, "cancel", None),
    (S.CANCELLED, "cancel", None),
]


async def _act(action: str, campaign_id: int, rt: Runtime) -> None:
    if action == "launch":
        await campaign_launch.launch(campaign_id, actor=ACTOR, runtime=rt)
    elif action == "pause":
        await service.pause(campaign_id, actor=ACTOR)
    elif action == "resume":
        await service.resume(campaign_id, actor=ACTOR, runtime=rt)
    else:
        await service.cancel(campaign_id, actor=ACTOR, now=rt.clock())


async def test_transition_table(rt: Runtime) -> None:
    """Each action is allowed from the statuses of DESIGN.md's state machine, and only those."""
    await person("Durand", mobile="+33612345601")
    for before, action, after in TRANSITION_TABLE:
        campaign = await make_campaign(settings=rt.settings)
        await Campaign.filter(id=campaign.id).update(status=before)
        if after is None:
            with pytest.raises(Conflict) as err:
                await _act(action, campaign.id, rt)
            assert err.value.status == 409
            assert service.STATUS_LABELS[before] in err.value.detail, (before, action)
            assert (await Campaign.get(id=campaign.id)).status == before
        else:
            await _act(action, campaign.id, rt)
            assert (await Campaign.get(id=campaign.id)).status == after, (before, action)


# --- launch ------------------------------------------------------------------------------


async def test_launch_decides_each_recipient_with_its_skip_reason(rt: Runtime) -> None:
    """One message per person: queued with its text, or skipped with exactly one reason."""
    first = await person("Alpha", mobile="+33612345601")
    opted = await person("Bravo", mobile="+33612345602")
    await OptOut.create(address="+33612345602", channel="sms", source="reply")
    nowhere = await person("Charlie")
    landline = await person("Delta", landline="+33322334455")
    duplicate = await person("Echo", mobile="+33612345601")
    lifted = await person("Foxtrot", mobile="+33612345603")
    await OptOut.create(address="+33612345603", channel="sms", source="reply", active=False)
    await person("Golf", mobile="+33612345604", segment="animations")  # not in the audience

    campaign = await make_campaign(settings=rt.settings)
    result = await campaign_launch.launch(campaign.id, actor=ACTOR, runtime=rt)

    assert result["status"] == "running"
    assert result["recipients"] == 2
    assert result["skipped_by_reason"] == {
        "duplicate_address": 1,
        "landline_only": 1,
        "no_address": 1,
        "opted_out": 1,
    }
    messages = {m.person_id: m for m in await Message.filter(campaign_id=campaign.id)}
    assert len(messages) == 6
    expected = {
        first.id: (MessageStatus.QUEUED, None),
        opted.id: (MessageStatus.SKIPPED, "opted_out"),
        nowhere.id: (MessageStatus.SKIPPED, "no_address"),
        landline.id: (MessageStatus.SKIPPED, "landline_only"),
        duplicate.id: (MessageStatus.SKIPPED, "duplicate_address"),
        lifted.id: (MessageStatus.QUEUED, None),
    }
    assert {pid: (m.status, m.skip_reason) for pid, m in messages.items()} == expected
    sent = messages[first.id]
    assert sent.text == "CCAS : Bonjour Alex, appelez le 0800 000 000."
    assert (sent.encoding, sent.segments, sent.address) == ("GSM-7", 1, "+33612345601")
    assert messages[opted.id].text == ""

    run = await CampaignRun.get(campaign_id=campaign.id)
    assert (run.number, run.recipients, run.skipped) == (1, 2, 4)
    stored = await Campaign.get(id=campaign.id)
    assert stored.audience_snapshot["count"] == 6
    assert stored.audience_snapshot["filter"] == {"segments_any": ["domicilies"]}
    assert stored.launched_by_id == ACTOR.id
    assert rt.queue.jobs == [("dispatch_run", (run.id,), f"dispatch:{run.id}")]  # type: ignore[union-attr]
    event = await AuditEvent.get(action="campaign.launch")
    assert event.detail["recipients"] == 2 and event.detail["skipped"]["opted_out"] == 1


async def test_email_launch_renders_subject_text_html_and_skips_case_insensitively(
    rt: Runtime,
) -> None:
    """E-mail: the address is compared without case for opt-outs and duplicates."""
    await person("Alpha", email="Alpha@Example.org")
    await person("Bravo", email="alpha@example.org")
    await person("Charlie", email="stop@example.org")
    await OptOut.create(address="stop@example.org", channel="email", source="link")
    campaign = await make_campaign(
        settings=rt.settings,
        channel="email",
        body="Bonjour {{ person.last_name }}, appelez le {{ ccas.hotline }}.",
        subject="{{ ccas.name }} prend de vos nouvelles",
    )
    result = await campaign_launch.launch(campaign.id, actor=ACTOR, runtime=rt)
    assert result["recipients"] == 1
    assert result["skipped_by_reason"] == {"duplicate_address": 1, "opted_out": 1}
    sent = await Message.get(campaign_id=campaign.id, status=MessageStatus.QUEUED)
    assert sent.subject == "CCAS prend de vos nouvelles"
    assert sent.text.startswith("Bonjour Alpha, appelez le 0800 000 000.")
    assert "/desabonnement/" in sent.text and sent.html and "/desabonnement/" in sent.html
    token = sent.text.rsplit("/desabonnement/", 1)[1].strip()
    secret = rt.settings.signing_key
    # The link names the address that received it, signed: opt-outs are by address.
    assert read_unsubscribe_token(secret, token) == (sent.address or "").lower()
    _, signature = token.split(".")
    other = unsubscribe_token(secret, "autre@exemple.fr").split(".")[0]
    assert read_unsubscribe_token(secret, f"{other}.{signature}") is None


async def test_unicode_template_stores_ucs2_and_its_segments(rt: Runtime) -> None:
    """A character outside GSM-7 makes the whole SMS UCS-2; the stored segments are real."""
    await person("Alpha", mobile="+33612345601")
    body = "Bonjour {{ person.first_name }}, une fête « conviviale » a lieu mercredi. " * 2
    campaign = await make_campaign(settings=rt.settings, body=body)
    await campaign_launch.launch(campaign.id, actor=ACTOR, runtime=rt)
    message = await Message.get(campaign_id=campaign.id)
    expected = analyse(message.text)
    assert message.encoding == "UCS-2" == expected.encoding
    assert message.segments == expected.segments == 2  # 105 UTF-16 units: 67 + 38
    assert "ê" in message.text and "«" not in message.text  # normalised, not folded


async def test_folding_is_applied_when_the_template_asks(rt: Runtime) -> None:
    await person("Alpha", mobile="+33612345601")
    body = "Une fête {{ person.first_name }}."
    campaign = await make_campaign(settings=rt.settings, body=body, fold=True)
    await campaign_launch.launch(campaign.id, actor=ACTOR, runtime=rt)
    message = await Message.get(campaign_id=campaign.id)
    assert (message.text, message.encoding) == ("Une fete Alex.", "GSM-7")


async def test_undefined_variable_is_refused_at_launch(rt: Runtime) -> None:
    """A template that cannot render for the sample stops the launch, nothing is written."""
    await person("Alpha", mobile="+33612345601")
    campaign = await make_campaign(settings=rt.settings)
    await campaign.fetch_related("template_version")
    await (
        type(campaign.template_version)
        .filter(id=campaign.template_version.id)
        .update(body="Bonjour {{ person.surnom }}")
    )
    with pytest.raises(Invalid) as err:
        await campaign_launch.launch(campaign.id, actor=ACTOR, runtime=rt)
    assert err.value.code == "undefined_variable"
    assert "variable inconnue" in err.value.detail
    assert (await Campaign.get(id=campaign.id)).status == CampaignStatus.DRAFT
    assert not await Message.exists(campaign_id=campaign.id)


async def test_cost_estimate_is_parts_times_recipients_times_price(rt: Runtime) -> None:
    """Three recipients of a two-part SMS at 0.065 per part: 6 parts, 0.39."""
    for i in range(3):
        await person(f"P{i}", mobile=f"+3361234560{i}")
    await person("Skip")  # no address: not counted
    body = "{{ person.first_name }} " + "x" * 170
    campaign = await make_campaign(settings=rt.settings, body=body)
    preview = await campaign_launch.preview_launch(campaign.id, rt)
    assert (preview["recipients"], preview["parts"], preview["cost_estimate"]) == (3, 6, "0.39")
    assert not await Message.exists(campaign_id=campaign.id)  # a preview writes nothing
    await campaign_launch.launch(campaign.id, actor=ACTOR, runtime=rt)
    stats = await campaign_reports.campaign_stats(campaign.id, rt.settings)
    assert stats["cost_estimate"] == {
        "parts": 6,
        "recipients": 3,
        "price_per_part": "0.0650",
        "total": "0.39",
    }
    assert stats["counts"]["queued"] == 3 and stats["counts"]["skipped"] == 1
    assert stats["skipped_by_reason"] == {"no_address": 1}
    assert stats["parts_sent"] == 0 and stats["cost_actual"] == "0.00"
    assert stats["delivery_rate"] is None
    # Two delivered (one priced by the provider), one failed after leaving.
    ids = [m.id for m in await Message.filter(campaign_id=campaign.id, status="queued")]
    await Message.filter(id=ids[0]).update(status="delivered", sent_at=T0, price=Decimal("0.1"))
    await Message.filter(id=ids[1]).update(status="delivered", sent_at=T0)
    await Message.filter(id=ids[2]).update(status="failed", sent_at=T0)
    stats = await campaign_reports.campaign_stats(campaign.id, rt.settings)
    assert stats["parts_sent"] == 6
    assert stats["cost_actual"] == "0.36"  # 0.1 reported + 4 parts x 0.065
    assert stats["delivery_rate"] == pytest.approx(2 / 3, abs=1e-4)


async def test_cancel_marks_queued_messages_cancelled(rt: Runtime) -> None:
    for i in range(3):
        await person(f"P{i}", mobile=f"+3361234560{i}")
    await person("Skip")
    campaign = await make_campaign(settings=rt.settings)
    await campaign_launch.launch(campaign.id, actor=ACTOR, runtime=rt)
    one = await Message.filter(campaign_id=campaign.id, status="queued").first()
    await Message.filter(id=one.id).update(status="submitted", sent_at=T0)  # already left
    result = await service.cancel(campaign.id, actor=ACTOR, now=T0)
    assert result == {"status": "cancelled", "cancelled_messages": 2}
    statuses = sorted(
        await Message.filter(campaign_id=campaign.id).values_list("status", flat=True)
    )
    assert statuses == ["cancelled", "cancelled", "skipped", "submitted"]
    with pytest.raises(Conflict, match="annulée"):
        await campaign_launch.launch(campaign.id, actor=ACTOR, runtime=rt)


# --- warnings ----------------------------------------------------------------------------

SENDER_TABLE = [
    # (sender, expects replies, warned)
    (None, True, True),  # the default sender, "CCAS", is alphanumeric
    ("MAIRIE", True, True),
    ("33612345678", True, False),
    ("+33612345678", True, False),
    ("MAIRIE", False, False),
]


async def test_alphanumeric_sender_warning(rt: Runtime) -> None:
    """A campaign expecting replies warns when its sender has letters: nobody can answer it."""
    for sender, expects_replies, warned in SENDER_TABLE:
        campaign = await make_campaign(
            settings=rt.settings, sender=sender, expects_replies=expects_replies
        )
        codes = [w["code"] for w in service.campaign_warnings(campaign, rt.settings)]
        assert codes == (["alphanumeric_sender"] if warned else []), sender


async def test_bad_sender_is_refused(rt: Runtime) -> None:
    with pytest.raises(Invalid) as err:
        await make_campaign(settings=rt.settings, sender="UN EXPEDITEUR TROP LONG")
    assert err.value.code == "bad_sender"

"""The replies inbox: every reply listed until read, corrections stored, audited and routed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from campaigns.core.audit import Actor
from campaigns.core.errors import Forbidden, Invalid, NotFound
from campaigns.core.runtime import Runtime
from campaigns.models import AuditEvent, Escalation, Reply, ReplyLabel, Role
from campaigns.replies.inbox import (
    InboxFilter,
    correct_label,
    corrections_for_training,
    list_replies,
    mark_read,
    unread_older_than,
)
from tests.escalation_support import NOW, escalation_runtime, make_person, make_reply, make_staff

pytestmark = pytest.mark.usefixtures("db")


async def _processed(text: str, label: str, hours_ago: float = 0) -> Reply:
    person = await make_person()
    reply = await make_reply(NOW - timedelta(hours=hours_ago), person=person, text=text)
    reply.label = label
    reply.processed_at = NOW
    reply.explanation = {"rules": ["merci"], "probabilities": {label: 0.9}}
    await reply.save()
    return reply


async def test_every_processed_reply_is_listed_with_its_why(runtime: Runtime) -> None:
    coordinator = await make_staff("coord@ccas.test", Role.COORDINATOR)
    actor = Actor(coordinator.id, "Coordinatrice")
    thanks = await _processed("merci beaucoup", "thanks")
    await _processed("STOP", "opt_out")
    await make_reply(NOW, text="pas encore classée")  # not processed: not yet in the inbox
    page = await list_replies(coordinator, InboxFilter(), actor)
    assert page["total"] == 2 and page["unread"] == 2
    item = next(i for i in page["items"] if i["id"] == thanks.id)
    assert item["label_name"] == "remerciement"
    assert item["explanation"]["probabilities"] == {"thanks": 0.9}
    assert item["person_name"] == "Jeanne Martin"
    only_thanks = await list_replies(coordinator, InboxFilter(label="thanks"), actor)
    assert [i["id"] for i in only_thanks["items"]] == [thanks.id]
    assert await AuditEvent.exists(action="reply.list", actor_id=coordinator.id)


async def test_read_and_unread(runtime: Runtime) -> None:
    coordinator = await make_staff("coord@ccas.test", Role.COORDINATOR)
    actor = Actor(coordinator.id, "Coordinatrice")
    first = await _processed("ok", "thanks", hours_ago=30)
    await _processed("qui êtes vous", "other", hours_ago=2)
    assert await unread_older_than(NOW) == 1
    assert await mark_read(coordinator, [first.id], now=NOW, actor=actor) == 1
    assert await mark_read(coordinator, [first.id], now=NOW, actor=actor) == 0
    assert await unread_older_than(NOW) == 0
    unread = await list_replies(coordinator, InboxFilter(unread=True), actor)
    assert [i["text"] for i in unread["items"]] == ["qui êtes vous"]


async def test_caseworkers_have_no_inbox(runtime: Runtime) -> None:
    caseworker = await make_staff("cw@ccas.test", Role.CASEWORKER, ["urgence"])
    with pytest.raises(Forbidden):
        await list_replies(caseworker, InboxFilter(), Actor(caseworker.id, "TS"))


def test_bad_filters_are_refused() -> None:
    with pytest.raises(Invalid):
        InboxFilter(label="panic")
    with pytest.raises(Invalid):
        InboxFilter(page=0)


async def test_a_correction_to_distress_reaches_urgence_and_teaches(runtime: Runtime) -> None:
    escalation_runtime(runtime)
    coordinator = await make_staff("coord@ccas.test", Role.COORDINATOR)
    actor = Actor(coordinator.id, "Coordinatrice")
    reply = await _processed("tout va bien, juste plus de courant depuis lundi", "thanks")
    result = await correct_label(coordinator, reply.id, "distress", runtime=runtime, actor=actor)
    assert result["previous"] == "thanks" and result["label"] == "distress"
    escalation = await Escalation.get(id=result["escalation_id"])
    assert escalation.queue == "urgence"
    stored = await ReplyLabel.get(reply_id=reply.id)
    assert (stored.old_label, stored.new_label, stored.staff_id) == (
        "thanks",
        "distress",
        coordinator.id,
    )
    refreshed = await Reply.get(id=reply.id)
    assert refreshed.read_at is not None
    assert refreshed.explanation["corrected"]["from"] == "thanks"
    assert await AuditEvent.exists(action="reply.relabel", object_id=str(reply.id))
    assert await corrections_for_training() == [
        ("distress", "tout va bien, juste plus de courant depuis lundi")
    ]


async def test_the_latest_correction_wins_and_erased_texts_teach_nothing(
    runtime: Runtime,
) -> None:
    escalation_runtime(runtime)
    coordinator = await make_staff("coord@ccas.test", Role.COORDINATOR)
    actor = Actor(coordinator.id, "Coordinatrice")
    reply = await _processed("bof", "other")
    await correct_label(coordinator, reply.id, "thanks", runtime=runtime, actor=actor)
    await correct_label(coordinator, reply.id, "callback", runtime=runtime, actor=actor)
    assert await corrections_for_training() == [("callback", "bof")]
    await Reply.filter(id=reply.id).update(text="")
    assert await corrections_for_training() == []


async def test_corrections_need_sight_of_the_reply(runtime: Runtime) -> None:
    escalation_runtime(runtime)
    caseworker = await make_staff("cw@ccas.test", Role.CASEWORKER, ["rappel"])
    reply = await _processed("merci", "thanks")
    with pytest.raises(NotFound):
        await correct_label(caseworker, reply.id, "distress", runtime=runtime, actor=Actor(1, "x"))
    coordinator = await make_staff("coord@ccas.test", Role.COORDINATOR)
    with pytest.raises(Invalid):
        await correct_label(coordinator, reply.id, "panic", runtime=runtime, actor=Actor(1, "x"))

"""Campaign schedules: a scheduled start, recurring runs, pause and resume, nobody to reach."""

from __future__ import annotations

from datetime import timedelta

import pytest

from campaigns.campaign import launch as campaign_launch
from campaigns.campaign import lifecycle as service
from campaigns.core.errors import Invalid
from campaigns.core.runtime import Runtime
from campaigns.core.settings import Settings
from campaigns.models import Campaign, CampaignRun, CampaignStatus, Message
from tests.campaign_support import ACTOR, T0, campaign_runtime, make_campaign, person


@pytest.fixture
def rt(settings: Settings, db: str) -> Runtime:
    return campaign_runtime(settings)


# --- schedules ---------------------------------------------------------------------------


async def test_scheduled_campaign_starts_at_its_time_and_not_before(rt: Runtime) -> None:
    await person("Alpha", mobile="+33612345601")
    at = T0 + timedelta(hours=2)
    campaign = await make_campaign(settings=rt.settings, scheduled_at=at)
    result = await campaign_launch.launch(campaign.id, actor=ACTOR, runtime=rt)
    assert result["status"] == "scheduled" and result["run"] is None
    assert not await Message.exists(campaign_id=campaign.id)

    assert await campaign_launch.start_due_runs(rt, at - timedelta(minutes=1)) == 0
    assert not await CampaignRun.exists(campaign_id=campaign.id)
    assert await campaign_launch.start_due_runs(rt, at) == 1
    stored = await Campaign.get(id=campaign.id)
    assert stored.status == CampaignStatus.RUNNING and stored.next_run_at is None
    assert await Message.filter(campaign_id=campaign.id).count() == 1
    assert await campaign_launch.start_due_runs(rt, at + timedelta(minutes=5)) == 0  # idempotent
    assert await CampaignRun.filter(campaign_id=campaign.id).count() == 1


async def test_scheduled_in_the_past_is_refused(rt: Runtime) -> None:
    with pytest.raises(Invalid) as err:
        await make_campaign(settings=rt.settings, scheduled_at=T0 - timedelta(minutes=1))
    assert err.value.code == "scheduled_in_past"


async def test_recurring_campaign_makes_one_run_every_n_days(rt: Runtime) -> None:
    """Every 3 days a new run, one message per person per run; missed days make one late run."""
    people = [await person(f"P{i}", mobile=f"+3361234560{i}") for i in range(3)]
    campaign = await make_campaign(settings=rt.settings, recurrence_days=3)
    await campaign_launch.launch(campaign.id, actor=ACTOR, runtime=rt)
    assert (await Campaign.get(id=campaign.id)).next_run_at == T0 + timedelta(days=3)

    # Run 1 ends: the campaign waits for its next run rather than completing.
    run1 = await CampaignRun.get(campaign_id=campaign.id, number=1)
    await Message.filter(run_id=run1.id).update(status="delivered", sent_at=T0)
    await service.finish_run(run1.id, T0 + timedelta(hours=1))
    assert (await Campaign.get(id=campaign.id)).status == CampaignStatus.SCHEDULED

    assert await campaign_launch.start_due_runs(rt, T0 + timedelta(days=2, hours=23)) == 0
    assert await campaign_launch.start_due_runs(rt, T0 + timedelta(days=3)) == 1
    assert await campaign_launch.start_due_runs(rt, T0 + timedelta(days=3)) == 0
    run2 = await CampaignRun.get(campaign_id=campaign.id, number=2)
    per_person = sorted(await Message.filter(run_id=run2.id).values_list("person_id", flat=True))
    assert per_person == sorted(p.id for p in people)
    stored = await Campaign.get(id=campaign.id)
    assert stored.status == CampaignStatus.RUNNING
    assert stored.next_run_at == T0 + timedelta(days=6)

    # A scheduler down for a week: one late run, and the rhythm kept from the first run.
    assert await campaign_launch.start_due_runs(rt, T0 + timedelta(days=13)) == 1
    assert await campaign_launch.start_due_runs(rt, T0 + timedelta(days=13)) == 0
    assert await CampaignRun.filter(campaign_id=campaign.id).count() == 3
    assert (await Campaign.get(id=campaign.id)).next_run_at == T0 + timedelta(days=15)
    assert await Message.filter(campaign_id=campaign.id).count() == 9
    jobs = rt.queue.jobs  # type: ignore[union-attr]
    assert [job[0] for job in jobs] == ["dispatch_run"] * 3


async def test_pause_resume_hands_queued_runs_back_to_dispatch(rt: Runtime) -> None:
    await person("Alpha", mobile="+33612345601")
    campaign = await make_campaign(settings=rt.settings)
    await campaign_launch.launch(campaign.id, actor=ACTOR, runtime=rt)
    await service.pause(campaign.id, actor=ACTOR)
    resumed = await service.resume(campaign.id, actor=ACTOR, runtime=rt)
    assert resumed.status == CampaignStatus.RUNNING
    run = await CampaignRun.get(campaign_id=campaign.id)
    assert rt.queue.jobs[-1] == ("dispatch_run", (run.id,), f"dispatch:{run.id}")  # type: ignore[union-attr]


async def test_launch_with_nobody_to_reach_completes_at_once(rt: Runtime) -> None:
    await person("Alpha")  # no address
    campaign = await make_campaign(settings=rt.settings)
    result = await campaign_launch.launch(campaign.id, actor=ACTOR, runtime=rt)
    assert result["status"] == "completed"
    assert [w["code"] for w in result["warnings"]] == ["alphanumeric_sender", "no_recipients"]
    assert rt.queue.jobs == []  # type: ignore[union-attr]

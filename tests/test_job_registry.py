"""Every job the domain enqueues is known to both runners, and the minute tick does all upkeep."""

from __future__ import annotations

from datetime import timedelta

from campaigns.models import AuditEvent, Escalation, EscalationStatus
from campaigns.replies import intake as replies
from workers import jobs
from workers.settings import _cron_jobs, _functions

ENQUEUED_BY_THE_DOMAIN = {"dispatch_run", "dispatch_lane", "apply_receipts", replies.PROCESS_JOB}


def test_every_enqueued_job_is_registered_in_process_and_under_arq() -> None:
    arq_names = {f.name for f in _functions()}
    assert set(jobs.FUNCTIONS) >= ENQUEUED_BY_THE_DOMAIN
    assert arq_names >= ENQUEUED_BY_THE_DOMAIN
    assert [c.coroutine for c in _cron_jobs("q")] == [jobs.tick]


async def test_tick_runs_every_upkeep_step(runtime) -> None:
    now = runtime.clock()
    snoozed = await Escalation.create(
        queue="rappel",
        msisdn="+33612345678",
        status=EscalationStatus.SNOOZED,
        snoozed_until=now - timedelta(minutes=5),
        due_at=now + timedelta(hours=2),
    )
    overdue = await Escalation.create(
        queue="urgence",
        msisdn="+33698765432",
        open_key="n+33698765432:urgence",
        status=EscalationStatus.OPEN,
        due_at=now - timedelta(hours=2),
    )
    old = await AuditEvent.create(actor_label="système", action="test.old", object_type="x")
    await AuditEvent.filter(id=old.id).update(at=now - timedelta(days=400))
    recent = await AuditEvent.create(actor_label="système", action="test.new", object_type="x")
    done = await jobs.tick({"runtime": runtime})
    assert set(done) == {
        "started",
        "journeys",
        "leftovers",
        "recovered",
        "receipts_applied",
        "nudged",
        "replies_finalised",
        "escalations_woken",
        "escalations_overdue",
        "reply_summary",
        "audit_purged",
        "receipts_purged",
    }
    assert done["escalations_woken"] == 1
    assert done["escalations_overdue"] == 1
    assert (await Escalation.get(id=snoozed.id)).status == EscalationStatus.OPEN
    assert (await Escalation.get(id=overdue.id)).overdue_notified_at is not None
    # The trail keeps CAMPAIGNS_AUDIT_RETENTION_DAYS (365 by default), then forgets.
    assert done["audit_purged"] >= 1
    assert not await AuditEvent.filter(id=old.id).exists()
    assert await AuditEvent.filter(id=recent.id).exists()

"""What happens to a classified reply: opt-out, queue, archive; nobody is ever silenced.

The decision comes from the rules and the learned model together
(:func:`campaigns.rules.reply_policy.decide`). Routing follows four promises:
- a distress reply always reaches the urgence queue, whatever else it says;
- a number is silenced automatically only by a reply that is nothing but an opt-out;
  a STOP that says more is honoured and read by a person;
- a thank-you is archived unread only when the model is sure and nothing is at risk;
- anything uncertain goes to a person (triage), never to no queue.
The reply keeps the why (rules fired, probabilities) for the inbox.
"""

from __future__ import annotations

import logging
from typing import Any

from campaigns.core import audit
from campaigns.core.runtime import Runtime
from campaigns.escalations.lifecycle import escalate
from campaigns.models import OptOut, Reply
from campaigns.registry.optouts import lift_opt_out, normalise_address, opt_out
from campaigns.replies.callbacks import callback_as_call
from campaigns.replies.intake import REPLY_ACTOR, RetryLater
from campaigns.replies.learning import current_model
from campaigns.replies.matching import match_reply
from campaigns.rules.classification import configured_rules
from campaigns.rules.reply_policy import ReplyDecision, decide
from campaigns.rules.sms_encoding import analyse
from providers.base import Outcome, SendResult, SmsRequest

__all__ = ["confirmation_text", "explain", "process_reply", "queue_for"]

log = logging.getLogger(__name__)


def queue_for(reply: Reply, decision: ReplyDecision) -> str | None:
    """Which escalation queue a decided reply goes to; None when nobody needs to act."""
    if decision.label == "distress":
        return "urgence"
    if decision.auto_opt_out:
        return None  # an opt-out and nothing else: honoured, listed in the inbox
    if decision.label == "thanks" and decision.archive_ok:
        return None  # archived as read; the inbox still shows it
    if decision.resubscribe and decision.label == "other" and not decision.uncertain:
        return None  # "START" alone: the opt-out is lifted, nothing to call about
    if decision.label == "callback" and reply.candidate_ids and not decision.uncertain:
        return "rappel"
    # Everything else is read by a person: other, an opt-out that says more, a thank-you
    # the model is not sure of, an uncertain label, a sender nobody knows.
    return "triage"


def explain(decision: ReplyDecision, queue: str | None) -> dict[str, Any]:
    """What the inbox shows of why: rules, probabilities, what decided. No personal data."""
    return {
        "rule": decision.rule,
        "rules": list(decision.rules_fired),
        "rule_label": decision.rule_label,
        "model_label": decision.model_label,
        "probabilities": {k: round(v, 3) for k, v in decision.probabilities.items()},
        "distress_probability": round(decision.distress_probability, 3),
        "distress_source": list(decision.distress_source),
        "uncertain": decision.uncertain,
        "auto_opt_out": decision.auto_opt_out,
        "archived": decision.label == "thanks" and decision.archive_ok and queue is None,
        "queue": queue,
    }


async def process_reply(runtime: Runtime, reply_id: int) -> Reply | None:
    """Match, classify and act on one stored reply; a second run does nothing twice.

    The opt-out and the escalation are recorded first and the reply marked processed;
    the opt-out confirmation SMS goes last, so a throttled provider (RetryLater) never
    holds a reply out of its queue: the retried job only sends the confirmation.
    """
    reply = await Reply.get_or_none(id=reply_id)
    if reply is None:
        return None
    if reply.processed_at is not None:
        await _confirm_if_owed(runtime, reply)
        return reply
    await match_reply(reply)
    rules = configured_rules(runtime.settings.reply_rules)
    decision = decide(reply.text, rules, model=await current_model())
    queue = queue_for(reply, decision)
    reply.label = decision.label
    reply.rule = decision.rule[:64]
    reply.opt_out_requested = decision.opt_out_requested
    reply.explanation = explain(decision, queue)
    await reply.save(
        update_fields=[
            "candidate_ids",
            "person_id",
            "message_id",
            "campaign_id",
            "label",
            "rule",
            "opt_out_requested",
            "explanation",
        ]
    )
    if decision.resubscribe and not decision.opt_out_requested:
        await lift_opt_out(reply.msisdn, actor=REPLY_ACTOR, reason="start")
    if decision.opt_out_requested:
        # The law asks that STOP be honoured; a STOP that says more is also read (queue).
        await opt_out(reply.msisdn, "sms", source="reply", reply_id=reply.id, actor=REPLY_ACTOR)
    if queue == "rappel" and reply.escalation_id is None:
        task = await callback_as_call(reply, runtime)
        if task is not None:
            # The call campaign's callers call back: no escalation waits beside the call.
            queue = None
            reply.explanation = {**explain(decision, None), "call_task_id": task.id}
            await reply.save(update_fields=["explanation"])
    if queue is not None and reply.escalation_id is None:
        escalation = await escalate(reply=reply, queue=queue, label=decision.label, runtime=runtime)
        reply.escalation_id = escalation.id
        await reply.save(update_fields=["escalation_id"])
    now = runtime.clock()
    reply.processed_at = now
    fields = ["processed_at"]
    if reply.explanation["archived"]:
        reply.read_at, reply.auto_archived = now, True
        fields += ["read_at", "auto_archived"]
    await reply.save(update_fields=fields)
    log.info("reply %s processed: %s (%s)", reply.id, decision.label, queue or "no queue")
    await _confirm_if_owed(runtime, reply)
    return reply


def confirmation_text(ccas_name: str) -> str:
    return f"Vous ne recevrez plus de SMS du {ccas_name}. Pour vous réinscrire, répondez START."


async def _owes_confirmation(reply: Reply) -> bool:
    """True while this reply switched the address's opt-out on and nothing was sent yet."""
    if not reply.opt_out_requested or reply.confirmation_sent_at is not None:
        return False
    # The reply that switched the opt-out on owes the confirmation (a second STOP from an
    # address already opted out does not); START since then cancels it.
    address = normalise_address(reply.msisdn)
    return await OptOut.exists(address=address, active=True, reply_id=reply.id)


async def _confirm_if_owed(runtime: Runtime, reply: Reply) -> None:
    if await _owes_confirmation(reply):
        await _confirm_opt_out(runtime, reply)


async def _confirm_opt_out(runtime: Runtime, reply: Reply) -> None:
    """Send the one confirmation SMS, claimed on the reply first so a re-run never resends."""
    if reply.confirmation_sent_at is not None:
        return
    now = runtime.clock()
    claimed = await Reply.filter(id=reply.id, confirmation_sent_at=None).update(
        confirmation_sent_at=now
    )
    if not claimed:
        return
    reply.confirmation_sent_at = now
    analysis = analyse(confirmation_text(runtime.settings.ccas_name))
    request = SmsRequest(
        message_id=f"optout-{reply.id}",
        to=reply.msisdn,
        # Answer from the number they wrote to: that is where START has to go.
        sender=reply.to or runtime.settings.sms_sender,
        text=analysis.text,
        unicode=analysis.encoding == "UCS-2",
        status_report=False,
    )
    try:
        sent: SendResult | None = await runtime.sms.send_sms(request)
    except Exception:
        # It may have left: never resend blindly (same rule as campaign messages).
        log.exception("opt-out confirmation for reply %s: provider error", reply.id)
        sent = None
    if sent is not None and sent.outcome is Outcome.RETRY:
        # Nothing left: hand the claim back so the retried job sends it.
        await Reply.filter(id=reply.id).update(confirmation_sent_at=None)
        reply.confirmation_sent_at = None
        raise RetryLater(sent.retry_after or 60)
    await audit.record(
        REPLY_ACTOR,
        "optout.confirmation",
        "reply",
        reply.id,
        outcome=sent.outcome.value if sent is not None else "error",
        reason=sent.reason if sent is not None else None,
    )

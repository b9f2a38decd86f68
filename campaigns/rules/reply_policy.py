"""The decision on one reply: the rules and the learned model together.

Distress first, and never hidden: the reply is ``distress`` when a distress rule fires
or when the model's p(distress) reaches :data:`DISTRESS_THRESHOLD`, the threshold that
5-fold cross-validation on the corpus showed keeps at least 99 % of the distress
replies (rules and model together). A passage that stopped a distress rule (a negation,
a past event: "je ne suis plus à la rue") does not count for the model's p(distress)
either. Otherwise the model's label wins, unless one of the precise rules (STOP,
START, wrong number, "rappelez-moi", "tout va bien") fired and the model gives its
label some weight (:func:`combine_label`, chosen by the same CV).

What nobody reads must be beyond doubt: ``auto_opt_out`` needs an opt-out rule that
found nothing else in the text, the model's agreement and no distress signal at all;
``archive_ok`` needs a confident thank-you with no risk signal. Everything the model
and rules disagree on, or the model cannot read, is ``uncertain``: a person looks.

Pure like the model: no database, no web. Routing (campaigns.replies) uses it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from campaigns.rules.classification import (
    DEFAULT_RULE,
    LABELS,
    Classification,
    RuleSet,
    classify,
    default_rules,
)
from campaigns.rules.reply_model import (
    DEFAULT_FOLDS,
    Example,
    ModelView,
    ReplyModel,
    cross_validate,
    default_model,
    per_label,
)
from campaigns.rules.reply_text import FUNCTION_WORDS, model_text

# p(distress) at or above which the model alone sends a reply to the urgence queue.
# From `cross_validate_policy(corpus_examples())`: the highest threshold at which
# "distress rule or p(distress) >= threshold" keeps >= 99 % of the corpus's distress
# replies out of fold, rounded down (tests/test_reply_policy.py checks it still does).
DISTRESS_THRESHOLD = 0.44
# No risk signal: p(distress) this far below the threshold (a quarter of it).
DISTRESS_QUIET = DISTRESS_THRESHOLD / 4
# A thank-you may be archived unread from this p(thanks) on: the lowest value of
# ARCHIVE_GRID at which, under CV, nothing archived was distress and at least
# ARCHIVE_PRECISION of it was a thank-you (0.95: 389 archived, none wrong; at 0.9 one
# distress reply was archived). PolicyCV.archive_table, printed by the bench.
THANKS_ARCHIVE_MIN = 0.95
ARCHIVE_PRECISION = 0.99
# Label combination (combine_label): the model, unless a rule of at least this priority
# (opt-out 90, START 80, wrong number 75, explicit callback 70) fired and the model
# gives that rule's label at least RULE_AGREEMENT_MIN. Under CV the best settings of
# COMBINATION_GRID were within one reply of each other (93.0 %); this one reads as
# intended and is among them. The model alone was 0.1 point and the rules first 0.5
# point below.
RULE_PRIORITY_MIN = 70
RULE_AGREEMENT_MIN = 0.1
# Above this top probability the model would win even against such a rule; None: never
# (CV did not favour it).
MODEL_OVERRIDE: float | None = None
# Below this top probability the model is hesitating: a person checks the label.
UNCERTAIN_BELOW = 0.5
# The rules read this much of a pasted text: a reassembled SMS is under 1,600
# characters, and a 10,000-character paste must not cost the worker seconds.
RULES_MAX_CHARS = 4_000


@dataclass(frozen=True)
class ReplyDecision:
    """What to do with one reply, and why."""

    label: str
    # ("rule",), ("model",), ("rule", "model") when distress; () otherwise.
    distress_source: tuple[str, ...]
    # The deciding rule ("default" when none fired) and every rule that fired.
    rule: str
    rules_fired: tuple[str, ...]
    rule_label: str
    # The model's probabilities over the five labels, and its top label.
    probabilities: dict[str, float]
    # The p(distress) compared with the threshold: of the text without its negated or
    # past passages when a distress rule was stopped by them, else probabilities'.
    distress_probability: float
    model_label: str
    # Opt out now, with nobody reading the reply (an opt-out and nothing else).
    auto_opt_out: bool
    # The sender asked to stop receiving SMS (possibly among other things): an opt-out
    # rule fired, or the label is opt_out and not uncertain. An uncertain opt_out label
    # leaves it False: a person decides. Opt out on this flag, not on the label.
    opt_out_requested: bool
    # A thank-you that may be archived unread.
    archive_ok: bool
    # The label is a guess: a person should check it (never archived, never automatic).
    uncertain: bool
    # START and no STOP: lift the opt-out.
    resubscribe: bool


def decide(
    text: str | bytes,
    rules: RuleSet | None = None,
    model: ReplyModel | None = None,
) -> ReplyDecision:
    """Decide on one reply; any input gets a label, never an exception."""
    text = _as_text(text)
    ruleset = rules if rules is not None else default_rules()
    reply_model = model if model is not None else default_model()
    classification = classify(text[:RULES_MAX_CHARS], ruleset)
    discounted = None
    if classification.discounted is not None:
        discounted = reply_model.view(classification.discounted)
    return combine(classification, reply_model.view(text), rule_facts(ruleset), discounted)


@dataclass(frozen=True)
class RuleFacts:
    """What the policy needs to know about a rule set's rules, by id."""

    priorities: dict[str, int]
    labels: dict[str, str]
    resubscribe: frozenset[str]


_facts_cache: dict[int, tuple[RuleSet, RuleFacts]] = {}


def rule_facts(ruleset: RuleSet) -> RuleFacts:
    """The facts of ``ruleset``, computed once per rule set (the worker keeps one)."""
    cached = _facts_cache.get(id(ruleset))
    if cached is not None and cached[0] is ruleset:
        return cached[1]
    facts = RuleFacts(
        priorities={rule.id: rule.priority for rule in ruleset.rules},
        labels={rule.id: rule.label for rule in ruleset.rules},
        resubscribe=frozenset(rule.id for rule in ruleset.rules if rule.resubscribe),
    )
    if len(_facts_cache) >= 8:
        _facts_cache.clear()
    _facts_cache[id(ruleset)] = (ruleset, facts)
    return facts


def combine(
    classification: Classification,
    view: ModelView,
    facts: RuleFacts,
    discounted: ModelView | None = None,
    *,
    threshold: float = DISTRESS_THRESHOLD,
) -> ReplyDecision:
    """The policy itself, from the rules' and the model's outputs (CV reuses it).

    ``discounted`` is the model's view of the text without the passages that stopped a
    distress rule (Classification.discounted): its p(distress) is the one compared with
    the threshold, so "je ne suis plus à la rue" is not distress by the model either.
    """
    p = view.probabilities
    judged = discounted if discounted is not None else view
    # Without evidence the probabilities are only the class priors: they say nothing.
    p_distress = judged.probabilities["distress"] if judged.evidence else 0.0
    rule_label = classification.label if classification.rule != DEFAULT_RULE else "none"
    # Any distress rule, even one a CCAS rule file outranked.
    rule_distress = any(
        facts.labels.get(rule_id) == "distress" for rule_id in classification.matched
    )
    model_distress = p_distress >= threshold
    model_label = max(LABELS, key=lambda label: p[label]) if view.evidence else "none"

    if rule_distress or model_distress:
        label = "distress"
    elif not view.evidence:
        # Empty, junk, a script the model never saw: only the rules can say something.
        label = classification.label
    else:
        label = combine_label(p, rule_label, facts.priorities.get(classification.rule, 0))
    sources = tuple(
        name for name, fired in (("rule", rule_distress), ("model", model_distress)) if fired
    )
    quiet = (
        not rule_distress
        and view.evidence
        and p_distress < DISTRESS_QUIET
        and p["distress"] < DISTRESS_QUIET
    )

    if label == "distress":
        # The urgence queue gets it either way; from the model alone and under one
        # chance in two, it is a cautious call a caseworker should know is one.
        uncertain = not rule_distress and p_distress < UNCERTAIN_BELOW
    else:
        uncertain = (
            not view.evidence
            or p[model_label] < UNCERTAIN_BELOW
            or label != model_label
            or rule_label not in ("none", model_label)
        )
    # Opting someone out ends the outreach: the model alone asks for it only when sure.
    opt_out_requested = classification.opt_out_requested or (label == "opt_out" and not uncertain)
    auto_opt_out = (
        label == "opt_out"
        and classification.label == "opt_out"
        and classification.opt_out_only
        and model_label == "opt_out"
        and quiet
    )
    archive_ok = (
        label == "thanks"
        and p["thanks"] >= THANKS_ARCHIVE_MIN
        and quiet
        and not opt_out_requested
        and not uncertain
    )
    resubscribe = not classification.opt_out_requested and any(
        rule_id in facts.resubscribe for rule_id in classification.matched
    )
    return ReplyDecision(
        label=label,
        distress_source=sources,
        rule=classification.rule,
        rules_fired=classification.matched,
        rule_label=rule_label,
        probabilities=dict(p),
        distress_probability=p_distress,
        model_label=model_label,
        auto_opt_out=auto_opt_out,
        opt_out_requested=opt_out_requested,
        archive_ok=archive_ok,
        uncertain=uncertain,
        resubscribe=resubscribe,
    )


def combine_label(
    probabilities: dict[str, float],
    rule_label: str,
    rule_priority: int,
    *,
    rule_priority_min: int = RULE_PRIORITY_MIN,
    rule_agreement_min: float = RULE_AGREEMENT_MIN,
    model_override: float | None = MODEL_OVERRIDE,
) -> str:
    """The non-distress label: the model's, unless a high-priority rule fired with agreement.

    High-priority rules are the precise ones (STOP, START, wrong number, "rappelez-moi");
    "agreement" is the model giving that label some weight, so that a rule tripped by an
    odd phrasing does not override a model sure of something else. Distress is decided
    before and is out of the running here.
    """
    candidates = [label for label in LABELS if label != "distress"]
    model_label = max(candidates, key=lambda label: probabilities[label])
    if model_override is not None and probabilities[model_label] >= model_override:
        return model_label
    if (
        rule_label in candidates
        and rule_priority >= rule_priority_min
        and probabilities[rule_label] >= rule_agreement_min
    ):
        return rule_label
    return model_label


def _as_text(text: str | bytes) -> str:
    if isinstance(text, bytes):
        return text.decode("utf-8", errors="replace")
    return text if isinstance(text, str) else str(text)


# --- Cross-validation of the policy -------------------------------------------------


@dataclass(frozen=True)
class PolicyCV:
    """Out-of-fold figures of the whole decision (rules + model) on labelled examples."""

    folds: int
    # The threshold the figures use, and the one CV finds for >= 99 % distress recall.
    threshold: float
    threshold_found: float
    accuracy: float
    precision: dict[str, float]
    recall: dict[str, float]
    support: dict[str, int]
    confusion: dict[tuple[str, str], int]
    distress_recall: float
    fold_distress_recalls: tuple[float, ...]
    non_distress_flagged: float
    auto_opt_out_count: int
    auto_opt_out_wrong: int
    archived_count: int
    archived_not_thanks: int
    archived_distress: int
    uncertain_share: float
    # The model alone (argmax) and its own threshold, for comparison.
    model_accuracy: float
    model_log_loss: float
    model_threshold: float
    # Accuracy of each combination tried: {(priority_min, agreement, override): accuracy}.
    combinations: dict[tuple[int, float, float | None], float]
    # {p(thanks) minimum: (archived, not thanks, distress)} with the other conditions.
    archive_table: dict[float, tuple[int, int, int]]


# Priority 101 is above every rule: the model alone.
COMBINATION_GRID: tuple[tuple[int, float, float | None], ...] = tuple(
    (priority, agreement, override)
    for priority in (0, 50, 60, 70, 90, 101)
    for agreement in (0.0, 0.1, 0.2, 0.3)
    for override in (None, 0.6, 0.8)
)
ARCHIVE_GRID = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def cross_validate_policy(
    examples: Sequence[Example],
    folds: int = DEFAULT_FOLDS,
    *,
    rules: RuleSet | None = None,
    threshold: float | None = None,
) -> PolicyCV:
    """Out-of-fold model probabilities through :func:`combine`, with the real rules.

    ``threshold`` defaults to the one CV finds for the rules-or-model decision, so the
    figures show what the recorded :data:`DISTRESS_THRESHOLD` should be.
    """
    ruleset = rules if rules is not None else default_rules()
    facts = rule_facts(ruleset)
    examples = list(examples)
    classifications = [classify(text[:RULES_MAX_CHARS], ruleset) for _, text in examples]
    rule_hits = [any(facts.labels.get(r) == "distress" for r in c.matched) for c in classifications]
    discounted = [c.discounted for c in classifications]
    model_cv = cross_validate(examples, folds, rule_hits=rule_hits, discounted=discounted)
    found = model_cv.distress_threshold_with_rules
    assert found is not None  # rule_hits were given
    chosen = threshold if threshold is not None else found
    truth = [label for label, _ in examples]
    views = [
        ModelView(
            dict(zip(LABELS, (float(v) for v in row), strict=True)),
            evidence=not FUNCTION_WORDS.issuperset(model_text(text).split()),
        )
        for row, (_, text) in zip(model_cv.oof_probabilities, examples, strict=True)
    ]
    decisions = [
        combine(
            c,
            v,
            facts,
            None if c.discounted is None else _distress_only(scored),
            threshold=chosen,
        )
        for c, v, scored in zip(classifications, views, model_cv.oof_distress_scored, strict=True)
    ]
    predicted = [d.label for d in decisions]
    confusion = Counter(zip(truth, predicted, strict=True))
    precision, recall, support = per_label(confusion)
    distress = np.asarray([label == "distress" for label in truth])
    flagged = np.asarray([label == "distress" for label in predicted])
    combinations = {}
    for priority, agreement, override in COMBINATION_GRID:
        hits = 0
        for want, c, v, d in zip(truth, classifications, views, decisions, strict=True):
            got = d.label
            if got != "distress":
                rule_label = c.label if c.rule != DEFAULT_RULE else "none"
                got = combine_label(
                    v.probabilities,
                    rule_label,
                    facts.priorities.get(c.rule, 0),
                    rule_priority_min=priority,
                    rule_agreement_min=agreement,
                    model_override=override,
                )
            hits += got == want
        combinations[(priority, agreement, override)] = hits / len(examples)
    archive_table = {}
    for minimum in ARCHIVE_GRID:
        kept = [
            want
            for want, d in zip(truth, decisions, strict=True)
            if d.label == "thanks" and d.probabilities["thanks"] >= minimum and _archivable(d)
        ]
        archive_table[minimum] = (
            len(kept),
            sum(want != "thanks" for want in kept),
            sum(want == "distress" for want in kept),
        )
    auto = [(want, d) for want, d in zip(truth, decisions, strict=True) if d.auto_opt_out]
    archived = [(want, d) for want, d in zip(truth, decisions, strict=True) if d.archive_ok]
    return PolicyCV(
        folds=folds,
        threshold=chosen,
        threshold_found=found,
        accuracy=float(np.mean([w == g for w, g in zip(truth, predicted, strict=True)])),
        precision=precision,
        recall=recall,
        support=support,
        confusion=dict(confusion),
        distress_recall=float(flagged[distress].mean()),
        fold_distress_recalls=tuple(
            float(flagged[(model_cv.fold_of == k) & distress].mean()) for k in range(folds)
        ),
        non_distress_flagged=float(flagged[~distress].mean()),
        auto_opt_out_count=len(auto),
        auto_opt_out_wrong=sum(want != "opt_out" for want, _ in auto),
        archived_count=len(archived),
        archived_not_thanks=sum(want != "thanks" for want, _ in archived),
        archived_distress=sum(want == "distress" for want, _ in archived),
        uncertain_share=float(np.mean([d.uncertain for d in decisions])),
        model_accuracy=model_cv.accuracy,
        model_log_loss=model_cv.log_loss,
        model_threshold=model_cv.distress_threshold,
        combinations=combinations,
        archive_table=archive_table,
    )


def _distress_only(p_distress: float) -> ModelView:
    # The CV keeps only p(distress) of a discounted text: that is all combine reads.
    others = (1.0 - p_distress) / (len(LABELS) - 1)
    probabilities = {label: others for label in LABELS} | {"distress": float(p_distress)}
    return ModelView(probabilities, evidence=True)


def _archivable(decision: ReplyDecision) -> bool:
    """archive_ok's conditions other than the p(thanks) minimum."""
    return (
        not decision.distress_source
        and decision.probabilities["distress"] < DISTRESS_QUIET
        and decision.distress_probability < DISTRESS_QUIET
        and not decision.opt_out_requested
        and not decision.uncertain
    )

"""Benchmark of reply classification: rules and learned model together, on one core.

Run: `python bench/classify_bench.py [--replies 5000] [--runs 3] [--no-cv]`.
No database, no network. The process is pinned to one CPU and BLAS to one thread.

It prints:
1. the training time of the model on the shipped corpus (median of --runs);
2. replies per second of `decide()` called once per reply, as the reply worker calls it
   (the rules, the model, the policy), over --replies texts drawn from the corpus and
   the dev set with varied casing, punctuation and SMS spellings; and the rules alone
   and the model alone for comparison; wall clock and per CPU-second (the latter is
   what one core gives when other processes share it); then one pass with the model's
   per-word cache emptied, as in a fresh process. Target: at least 2,000 replies/s;
3. a 5-fold cross-validation summary on the corpus: the model alone (accuracy,
   log-loss, per-label precision/recall, its 99 % distress threshold), the model
   beside a calibrated linear SVM (log-loss: why logistic regression), the whole
   decision policy and the settings CV chose.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_RATE = 2_000
DEV_SET = ROOT / "tests" / "data" / "replies_dev.csv"


def pin_to_one_core() -> str:
    """Pin this process to one CPU and numerical libraries to one thread."""
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"CPU {cpu}"
    return "(affinity not available on this system)"


def replies(count: int, seed: int = 7) -> list[str]:
    """Reply-like texts: corpus and dev lines, some shouted, some without accents."""
    from campaigns.rules.classification import fold
    from campaigns.rules.reply_model import corpus_examples, read_examples

    texts = [text for _, text in corpus_examples()]
    if DEV_SET.exists():
        with DEV_SET.open(encoding="utf-8", newline="") as handle:
            texts += [text for _, text in read_examples(handle)]
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        text = rng.choice(texts)
        roll = rng.random()
        if roll < 0.1:
            text = text.upper()
        elif roll < 0.2:
            text = fold(text)
        elif roll < 0.25:
            text = text + " !!"
        out.append(text)
    return out


def rate(call: Callable[[str], object], texts: list[str], runs: int) -> tuple[float, float]:
    """Median replies per second of calling ``call(text)`` once per text: wall clock, and
    per second of this process's CPU time (what one core gives when others share it)."""
    for text in texts[:200]:
        call(text)  # warm-up: the first calls fill caches
    wall, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        for text in texts:
            call(text)
        wall.append(len(texts) / (time.perf_counter() - started))
        cpu.append(len(texts) / (time.process_time() - started_cpu))
    return statistics.median(wall), statistics.median(cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replies", type=int, default=5_000, help="texts per timing run")
    parser.add_argument("--runs", type=int, default=3, help="runs; the median is shown")
    parser.add_argument("--no-cv", action="store_true", help="skip the cross-validation")
    args = parser.parse_args()
    where = pin_to_one_core()

    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    from campaigns.rules.classification import classify, default_rules
    from campaigns.rules.reply_model import corpus_examples, train
    from campaigns.rules.reply_policy import decide

    examples = list(corpus_examples())
    print(f"Pinned to {where}; corpus: {len(examples)} labelled replies")

    timings, cpu_timings = [], []
    model = None
    for _ in range(args.runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        model = train(examples)
        timings.append(time.perf_counter() - started)
        cpu_timings.append(time.process_time() - started_cpu)
    assert model is not None
    print(
        f"Training: median {statistics.median(timings):.2f} s, "
        f"{statistics.median(cpu_timings):.2f} s of CPU "
        f"(runs: {', '.join(f'{t:.2f}' for t in timings)})"
    )

    rules = default_rules()
    texts = replies(args.replies)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{len(texts):,} replies per run, 1-minute load average {load:.2f}")
    for name, call in (
        ("Rules alone", lambda text: classify(text, rules)),
        ("Model alone", model.view),
        ("decide()", lambda text: decide(text, rules, model)),
    ):
        wall, cpu = rate(call, texts, args.runs)
        print(f"{name:12} {wall:8,.0f} replies/s ({cpu:,.0f} per CPU-second)")
    decide_rate = wall
    # The scorer keeps each word's character n-gram columns; a fresh process starts
    # without them. One pass over the same texts with the word cache emptied first:
    for block in model._scorer.blocks:
        block.words.clear()
    started, started_cpu = time.perf_counter(), time.process_time()
    for text in texts:
        decide(text, rules, model)
    cold = len(texts) / (time.perf_counter() - started)
    cold_cpu = len(texts) / (time.process_time() - started_cpu)
    print(f"{'  cold cache':12} {cold:8,.0f} replies/s ({cold_cpu:,.0f} per CPU-second)")
    verdict = "OK" if decide_rate >= TARGET_RATE else "BELOW TARGET"
    print(f"decide(): {1e6 / decide_rate:.0f} µs per reply; target {TARGET_RATE:,}/s: {verdict}")

    if not args.no_cv:
        cross_validation_summary(examples)
    return 0 if decide_rate >= TARGET_RATE else 1


def cross_validation_summary(examples: list[tuple[str, str]]) -> None:
    import numpy as np
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.metrics import log_loss
    from sklearn.model_selection import StratifiedKFold
    from sklearn.svm import LinearSVC

    from campaigns.rules.classification import LABELS
    from campaigns.rules.reply_model import RANDOM_STATE, build_pipeline, model_text
    from campaigns.rules.reply_policy import (
        DISTRESS_THRESHOLD,
        MODEL_OVERRIDE,
        RULE_AGREEMENT_MIN,
        RULE_PRIORITY_MIN,
        THANKS_ARCHIVE_MIN,
        cross_validate_policy,
    )

    started = time.perf_counter()
    policy = cross_validate_policy(examples, threshold=DISTRESS_THRESHOLD)
    print(f"\n5-fold cross-validation on the corpus ({time.perf_counter() - started:.1f} s)")
    print(
        f"Model alone: accuracy {policy.model_accuracy:.1%}, log-loss "
        f"{policy.model_log_loss:.3f}, 99 % distress threshold {policy.model_threshold:.3f}"
    )

    # Logistic regression against a calibrated linear SVM, same features and folds.
    texts = [model_text(text) for _, text in examples]
    truth = np.asarray([label for label, _ in examples])
    columns = sorted(LABELS)
    for name, classifier in (
        ("LogisticRegression", None),
        ("CalibratedClassifierCV(LinearSVC, sigmoid)", "sigmoid"),
        ("CalibratedClassifierCV(LinearSVC, isotonic)", "isotonic"),
    ):
        oof = np.zeros((len(texts), len(columns)))
        splitter = StratifiedKFold(n_splits=5, shuffle=True, random_state=RANDOM_STATE)
        for train_index, test_index in splitter.split(np.zeros(len(truth)), truth):
            pipeline = build_pipeline()
            if classifier is not None:
                svm = LinearSVC(C=0.5, random_state=RANDOM_STATE)
                pipeline.set_params(classifier=CalibratedClassifierCV(svm, method=classifier, cv=3))
            pipeline.fit([texts[i] for i in train_index], truth[train_index])
            found = pipeline.predict_proba([texts[i] for i in test_index])
            order = [list(pipeline.classes_).index(label) for label in columns]
            oof[test_index] = found[:, order]
        accuracy = np.mean(np.asarray(columns)[oof.argmax(axis=1)] == truth)
        print(
            f"  {name:45} log-loss {log_loss(truth, oof, labels=columns):.3f}, "
            f"accuracy {accuracy:.1%}"
        )

    print(
        f"Decision policy (rules + model) at the recorded threshold {policy.threshold}, "
        f"CV found {policy.threshold_found:.3f} for 99 % distress recall:"
    )
    print(f"  accuracy {policy.accuracy:.1%}")
    print(f"  {'label':10} {'precision':>10} {'recall':>8} {'support':>8}")
    for label in LABELS:
        print(
            f"  {label:10} {policy.precision[label]:>10.1%} {policy.recall[label]:>8.1%} "
            f"{policy.support[label]:>8}"
        )
    folds = ", ".join(f"{r:.1%}" for r in policy.fold_distress_recalls)
    print(f"  distress recall {policy.distress_recall:.2%} (per fold: {folds})")
    print(f"  other replies labelled distress {policy.non_distress_flagged:.1%}")
    print(
        f"  auto opt-outs {policy.auto_opt_out_count} ({policy.auto_opt_out_wrong} wrong); "
        f"uncertain {policy.uncertain_share:.1%}"
    )
    print("  archive ok from p(thanks) >= ... (archived, not thanks, distress):")
    for minimum, (kept, wrong, distress) in policy.archive_table.items():
        mark = "  <- recorded" if minimum == THANKS_ARCHIVE_MIN else ""
        print(f"    {minimum:.2f}: {kept}, {wrong}, {distress}{mark}")
    best = sorted(policy.combinations.items(), key=lambda item: -item[1])[:5]
    chosen = (RULE_PRIORITY_MIN, RULE_AGREEMENT_MIN, MODEL_OVERRIDE)
    print("  label combination (rule priority min, agreement min, model override):")
    for settings, accuracy in best:
        mark = "  <- recorded" if settings == chosen else ""
        print(f"    {settings}: {accuracy:.2%}{mark}")
    print(
        f"    model alone: {policy.combinations[(101, 0.0, None)]:.2%}; "
        f"rules first: {policy.combinations[(0, 0.0, None)]:.2%}"
    )


if __name__ == "__main__":
    raise SystemExit(main())

"""A learned reply classifier that works beside the rules of :mod:`classification`.

The rules are precise but only know the phrasings someone wrote down; on replies nobody
on the project had seen they missed about one distress message in five. This model
learns from the labelled corpus shipped in ``campaigns/rules/data/corpus_*.csv``
(``label;text``) and generalises through character n-grams, which survive spelling
mistakes, SMS spellings and Creole forms that no rule lists.

Pure: no database, no web, no files written, no pickle ever loaded. The model is
trained from the corpus at first use (about a second on one core) and kept for the
life of the process; staff corrections give another model, cached by their digest.

The text it reads is built by reply_text.model_text; predictions go through
reply_scorer.LinearScorer, a copy of the fitted weights that skips scikit-learn's
per-call overhead (scikit-learn is used for training and cross-validation).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import math
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import FeatureUnion, Pipeline

from campaigns.rules.classification import LABELS, RuleSet
from campaigns.rules.reply_scorer import LinearScorer
from campaigns.rules.reply_text import FUNCTION_WORDS, model_text, shipped_rules

Example = tuple[str, str]  # (label, text), the order of the corpus files' columns

RANDOM_STATE = 0
DEFAULT_FOLDS = 5
# The distress threshold must keep at least this share of the corpus's distress replies.
TARGET_DISTRESS_RECALL = 0.99
# A staff correction is a deliberate, checked label on a reply the model got wrong: it
# counts as several corpus lines so that a handful of them moves the model.
CORRECTION_WEIGHT = 4.0

# scikit-learn's log_loss wants probability columns in sorted label order.
_SORTED_COLUMNS = [LABELS.index(label) for label in sorted(LABELS)]


# --- Training ----------------------------------------------------------------------


@dataclass(frozen=True)
class ModelConfig:
    """The choices cross-validation compared.

    C = 100 had the lowest 5-fold CV log-loss on the corpus among 3 to 400 (0.247; 0.270
    at C = 10, 0.253 at 400). Character n-grams of (2, 5) or (1, 5) or (3, 6), word
    n-grams up to 3, balanced class weights and negation marking changed nothing beyond
    noise.
    """

    char_ngrams: tuple[int, int] = (2, 5)
    word_ngrams: tuple[int, int] = (1, 2)
    c: float = 100.0
    class_weight: str | None = None


DEFAULT_CONFIG = ModelConfig()


def build_pipeline(config: ModelConfig = DEFAULT_CONFIG) -> Pipeline:
    """TF-IDF of character and word n-grams, then a multinomial logistic regression.

    Logistic regression rather than a calibrated linear SVM: lower 5-fold CV log-loss on
    the corpus (0.25 against 0.30 with sigmoid and 0.33 with isotonic calibration, same
    features and folds; the bench prints them), one fit instead of one per calibration
    fold, and coefficients that explain a decision directly (ReplyModel.top_features).
    """
    features = FeatureUnion(
        [
            (
                "chars",
                TfidfVectorizer(
                    analyzer="char_wb",
                    ngram_range=config.char_ngrams,
                    sublinear_tf=True,
                    lowercase=False,
                    dtype=np.float64,
                ),
            ),
            (
                "words",
                TfidfVectorizer(
                    analyzer="word",
                    ngram_range=config.word_ngrams,
                    sublinear_tf=True,
                    lowercase=False,
                    # One-letter words matter here: "j ai", "c est", "1" (yes).
                    token_pattern=r"(?u)\b\w+\b",
                    dtype=np.float64,
                ),
            ),
        ]
    )
    classifier = LogisticRegression(
        C=config.c,
        class_weight=config.class_weight,
        solver="newton-cg",
        max_iter=1_000,
        random_state=RANDOM_STATE,
    )
    return Pipeline([("features", features), ("classifier", classifier)])


def train(
    examples: Iterable[Example],
    *,
    corrections: Sequence[Example] = (),
    config: ModelConfig = DEFAULT_CONFIG,
) -> ReplyModel:
    """Fit a model on ``(label, text)`` examples plus staff corrections.

    A correction replaces any example with the same model text (the staff label wins),
    and weighs :data:`CORRECTION_WEIGHT` lines. Deterministic: same inputs, same model.
    """
    rules = shipped_rules()
    corrected = {model_text(text, rules): label for label, text in _checked(corrections)}
    texts: list[str] = []
    labels: list[str] = []
    weights: list[float] = []
    for label, text in _checked(examples):
        normalised = model_text(text, rules)
        if normalised not in corrected:
            texts.append(normalised)
            labels.append(label)
            weights.append(1.0)
    for normalised, label in corrected.items():
        texts.append(normalised)
        labels.append(label)
        weights.append(CORRECTION_WEIGHT)
    missing = sorted(set(LABELS) - set(labels))
    if missing:
        raise ValueError(f"no training example for {', '.join(missing)}")
    pipeline = build_pipeline(config)
    pipeline.fit(texts, labels, classifier__sample_weight=np.asarray(weights))
    return ReplyModel(pipeline, rules)


def _checked(examples: Iterable[Example]) -> Iterable[Example]:
    for label, text in examples:
        if label not in LABELS:
            raise ValueError(f"unknown label {label!r} (expected one of {', '.join(LABELS)})")
        yield label, text


# --- Prediction ----------------------------------------------------------------------


@dataclass(frozen=True)
class ModelView:
    """What the model says about one text."""

    probabilities: dict[str, float]
    # False when no n-gram of the text is known to the model (empty, junk, unknown
    # script) or its words are all function words ("j'ai"): the probabilities are then
    # little more than the class priors and mean nothing.
    evidence: bool


class ReplyModel:
    """A trained classifier; thread-safe for prediction (it never changes)."""

    def __init__(self, pipeline: Pipeline, rules: RuleSet) -> None:
        self.pipeline = pipeline
        self.rules = rules
        self._scorer = LinearScorer(pipeline)
        self.labels: tuple[str, ...] = tuple(self._scorer.classes)
        self._names: list[str] | None = None

    def view(self, text: str) -> ModelView:
        """The probabilities of ``text``, and whether the model has anything to go on."""
        normalised = model_text(text, self.rules)
        indices, values = self._scorer.features(normalised)
        probabilities = self._scorer.softmax(self._scorer.scores(indices, values))
        return ModelView(
            {label: float(p) for label, p in zip(self.labels, probabilities, strict=True)},
            evidence=len(indices) > 0 and not FUNCTION_WORDS.issuperset(normalised.split()),
        )

    def probabilities(self, text: str) -> dict[str, float]:
        """``{label: probability}`` over the five labels, summing to 1."""
        return self.view(text).probabilities

    def predict_proba_batch(self, texts: Sequence[str]) -> np.ndarray:
        """The same probabilities through scikit-learn, columns in :attr:`labels` order."""
        normalised = [model_text(text, self.rules) for text in texts]
        return np.asarray(self.pipeline.predict_proba(normalised))

    def top_features(self, text: str, label: str, n: int = 5) -> list[tuple[str, float]]:
        """The n-grams of ``text`` that push most towards ``label``, strongest first.

        A feature's push is its TF-IDF value times how much more its coefficient favours
        ``label`` than the other labels on average (softmax is unchanged by a shift, so
        only that difference moves the probability). Only positive pushes are listed.
        """
        column = self.labels.index(label)
        indices, values = self._scorer.features(model_text(text, self.rules))
        if not len(indices):
            return []
        rows = self._scorer.weights[indices]
        push = values * (rows[:, column] - rows.mean(axis=1))
        names = self._feature_names()
        order = np.argsort(-push, kind="stable")[:n]
        return [(names[indices[i]], float(push[i])) for i in order if push[i] > 0]

    def _feature_names(self) -> list[str]:
        # Readable names: a word n-gram in quotes, a character n-gram in brackets with
        # its word boundaries as "_" (the char_wb analyser pads words with spaces).
        if self._names is None:
            names: list[str] = []
            for block in self._scorer.blocks:
                by_index = sorted(block.vocabulary.items(), key=lambda item: item[1])
                if block.characters:
                    names.extend(f"[{gram.replace(' ', '_')}]" for gram, _ in by_index)
                else:
                    names.extend(f"« {gram} »" for gram, _ in by_index)
            self._names = names
        return self._names


# --- Cross-validation ---------------------------------------------------------------


@dataclass(frozen=True)
class CrossValidation:
    """Out-of-fold figures of the model alone (argmax label) on a set of examples."""

    folds: int
    accuracy: float
    log_loss: float
    precision: dict[str, float]
    recall: dict[str, float]
    support: dict[str, int]
    # confusion[(expected, predicted)] = count
    confusion: dict[tuple[str, str], int]
    # The highest p(distress) threshold whose out-of-fold distress recall, pooled over
    # the folds, is at least the target: for the model alone, and for the decision
    # "a distress rule fires or p(distress) >= threshold" when rule hits were given.
    distress_threshold: float
    distress_recall_at_threshold: float
    # Share of the other labels' examples at or above the threshold (false alarms).
    non_distress_above_threshold: float
    fold_recalls: tuple[float, ...]
    distress_threshold_with_rules: float | None
    distress_recall_with_rules: float | None
    non_distress_flagged_with_rules: float | None
    fold_recalls_with_rules: tuple[float, ...] | None
    # Out-of-fold probabilities, rows in the examples' order, columns in LABELS order:
    # the policy's own choices are cross-validated on them.
    oof_probabilities: np.ndarray = field(repr=False)
    # Out-of-fold p(distress) as the policy compares it with the threshold (of the
    # discounted text when one was given).
    oof_distress_scored: np.ndarray = field(repr=False)
    labels: tuple[str, ...] = field(repr=False, default=())
    fold_of: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, dtype=int))


def cross_validate(
    examples: Sequence[Example],
    folds: int = DEFAULT_FOLDS,
    *,
    config: ModelConfig = DEFAULT_CONFIG,
    target_recall: float = TARGET_DISTRESS_RECALL,
    rule_hits: Sequence[bool] | None = None,
    discounted: Sequence[str | None] | None = None,
) -> CrossValidation:
    """Stratified k-fold CV (fixed shuffle) of :func:`train` on ``examples``.

    ``rule_hits[i]`` tells whether a distress rule fires on example ``i``; given, the
    threshold the decision policy needs is computed too (rules catch part of the
    distress replies, so the model may be stricter about the rest). ``discounted[i]``,
    when not None, is the text the policy scores for distress instead of example ``i``
    (its negated or past passages blanked, see Classification.discounted).
    """
    examples = list(_checked(examples))
    y = np.asarray([label for label, _ in examples])
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=RANDOM_STATE)
    oof = np.zeros((len(examples), len(LABELS)))
    fold_of = np.zeros(len(examples), dtype=int)
    scored_distress = np.zeros(len(examples))
    for number, (train_index, test_index) in enumerate(splitter.split(np.zeros(len(y)), y)):
        model = train([examples[i] for i in train_index], config=config)
        probabilities = model.predict_proba_batch([examples[i][1] for i in test_index])
        order = [model.labels.index(label) for label in LABELS]
        oof[test_index] = probabilities[:, order]
        fold_of[test_index] = number
        for i in test_index:
            alternative = discounted[i] if discounted is not None else None
            if alternative is None:
                scored_distress[i] = oof[i, LABELS.index("distress")]
            else:
                view = model.view(alternative)
                scored_distress[i] = view.probabilities["distress"] if view.evidence else 0.0
    predicted = np.asarray(LABELS)[oof.argmax(axis=1)]
    confusion = Counter(zip(y.tolist(), predicted.tolist(), strict=True))
    precision, recall, support = per_label(confusion)
    distress = y == "distress"
    p_distress = oof[:, LABELS.index("distress")]
    none_caught = np.zeros(len(y), dtype=bool)
    threshold = distress_threshold(p_distress, distress, none_caught, target_recall)
    flagged = p_distress >= threshold
    with_rules: tuple[float, float, float, tuple[float, ...]] | None = None
    if rule_hits is not None:
        caught = np.asarray(rule_hits, dtype=bool)
        rules_threshold = distress_threshold(scored_distress, distress, caught, target_recall)
        decided = caught | (scored_distress >= rules_threshold)
        with_rules = (
            rules_threshold,
            float(np.mean(decided[distress])),
            float(np.mean(decided[~distress])),
            _fold_recalls(decided, distress, fold_of, folds),
        )
    return CrossValidation(
        folds=folds,
        accuracy=float(np.mean(predicted == y)),
        log_loss=float(log_loss(y, oof[:, _SORTED_COLUMNS], labels=sorted(LABELS))),
        precision=precision,
        recall=recall,
        support=support,
        confusion=dict(confusion),
        distress_threshold=threshold,
        distress_recall_at_threshold=float(np.mean(flagged[distress])),
        non_distress_above_threshold=float(np.mean(flagged[~distress])),
        fold_recalls=_fold_recalls(flagged, distress, fold_of, folds),
        distress_threshold_with_rules=with_rules[0] if with_rules else None,
        distress_recall_with_rules=with_rules[1] if with_rules else None,
        non_distress_flagged_with_rules=with_rules[2] if with_rules else None,
        fold_recalls_with_rules=with_rules[3] if with_rules else None,
        oof_probabilities=oof,
        oof_distress_scored=scored_distress,
        labels=LABELS,
        fold_of=fold_of,
    )


def distress_threshold(
    p_distress: np.ndarray, distress: np.ndarray, caught: np.ndarray, target_recall: float
) -> float:
    """The highest t such that ``caught or p >= t`` keeps ``target_recall`` of the distress.

    ``caught`` marks examples already flagged by other means (the rules).
    """
    total = int(distress.sum())
    needed = math.ceil(target_recall * total) - int((caught & distress).sum())
    if total == 0 or needed <= 0:
        return 1.0
    ordered = np.sort(p_distress[distress & ~caught])[::-1]
    return float(ordered[needed - 1])


def _fold_recalls(
    flagged: np.ndarray, distress: np.ndarray, fold_of: np.ndarray, folds: int
) -> tuple[float, ...]:
    return tuple(float(np.mean(flagged[(fold_of == k) & distress])) for k in range(folds))


def per_label(
    confusion: Counter[tuple[str, str]],
) -> tuple[dict[str, float], dict[str, float], dict[str, int]]:
    """Precision, recall and support per label from {(expected, predicted): count}."""
    precision: dict[str, float] = {}
    recall: dict[str, float] = {}
    support: dict[str, int] = {}
    for label in LABELS:
        hits = confusion[(label, label)]
        predicted = sum(n for (_, got), n in confusion.items() if got == label)
        support[label] = sum(n for (want, _), n in confusion.items() if want == label)
        precision[label] = hits / predicted if predicted else 1.0
        recall[label] = hits / support[label] if support[label] else 1.0
    return precision, recall, support


# --- The corpus and the cached models ------------------------------------------------


def read_examples(handle: io.TextIOBase | Iterable[str]) -> list[Example]:
    """``label;text`` lines after a header line, as the corpus files and --evaluate use."""
    reader = csv.reader(handle, delimiter=";")
    next(reader, None)
    return [(row[0].strip(), ";".join(row[1:])) for row in reader if row and row[0].strip()]


@functools.lru_cache(maxsize=1)
def corpus_examples() -> tuple[Example, ...]:
    """Every ``corpus_*.csv`` shipped in ``campaigns/rules/data``, in file-name order."""
    folder = resources.files("campaigns.rules") / "data"
    examples: list[Example] = []
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.name.startswith("corpus_") and entry.name.endswith(".csv"):
            # Bytes then text: csv wants its own newline handling, which open() cannot set here.
            text = entry.read_bytes().decode("utf-8")
            examples.extend(read_examples(io.StringIO(text, newline="")))
    return tuple(examples)


_lock = threading.Lock()
_with_corrections: dict[str, ReplyModel] = {}
# Corrections change rarely; a few digests cover a rolling deploy without retraining.
_MAX_CORRECTION_MODELS = 4


@functools.lru_cache(maxsize=1)
def _default_model() -> ReplyModel:
    return train(corpus_examples())


def default_model() -> ReplyModel:
    """The corpus model, trained at first use and kept for the process."""
    with _lock:
        return _default_model()


def corrections_digest(corrections: Sequence[Example]) -> str:
    """A digest of the corrections in order (order changes the fit's rounding)."""
    digest = hashlib.sha256()
    for label, text in corrections:
        digest.update(f"{len(label)}:{label}{len(text)}:{text}".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def model_with_corrections(corrections: Sequence[Example]) -> ReplyModel:
    """The corpus model retrained with staff corrections, cached by their digest."""
    corrections = list(corrections)
    if not corrections:
        return default_model()
    key = corrections_digest(corrections)
    with _lock:
        cached = _with_corrections.get(key)
        if cached is None:
            cached = train(corpus_examples(), corrections=corrections)
            if len(_with_corrections) >= _MAX_CORRECTION_MODELS:
                _with_corrections.pop(next(iter(_with_corrections)))
            _with_corrections[key] = cached
        return cached

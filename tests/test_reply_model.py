"""The learned reply model: its text, determinism, fast scorer, CV figures, corrections.

Also the rule-side changes of issue 9 that decide what the model reads: negated and past
passages stop the distress rules and are blanked from the text the model judges.
"""

from __future__ import annotations

import io
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from campaigns.rules.classification import LABELS, classify, load_rules
from campaigns.rules.reply_model import (
    CORRECTION_WEIGHT,
    TARGET_DISTRESS_RECALL,
    CrossValidation,
    ReplyModel,
    corpus_examples,
    corrections_digest,
    cross_validate,
    default_model,
    model_text,
    model_with_corrections,
    read_examples,
    train,
)
from campaigns.rules.reply_text import MODEL_MAX_CHARS

SAMPLE = [
    "je suis tombée et je n'arrive pas à me relever",
    "STOP",
    "merci beaucoup, bonne journée",
    "rappelez-moi demain après 14h",
    "c'est qui ?",
    "jsui tt seul g fain",
    "mi lé malad, na poin person",
    "",
    "😢",
]


@pytest.fixture(scope="module")
def model() -> ReplyModel:
    return default_model()


@pytest.fixture(scope="module")
def corpus_cv() -> CrossValidation:
    examples = list(corpus_examples())
    hits = [classify(text).label == "distress" for _, text in examples]
    return cross_validate(examples, 5, rule_hits=hits)


# --- The corpus and the model's text -------------------------------------------------------


def test_the_corpus_is_every_shipped_file_with_known_labels() -> None:
    examples = corpus_examples()
    counts = Counter(label for label, _ in examples)
    # corpus_distress.csv and corpus_general.csv hold 2,499 lines; corpus_extra.csv adds more.
    assert len(examples) > 2_499
    assert set(counts) == set(LABELS)
    assert counts["distress"] > 900 and min(counts.values()) > 250
    assert all(text.strip() for _, text in examples)


def test_read_examples_skips_the_header_and_keeps_semicolons_in_the_text() -> None:
    handle = io.StringIO('label;text\ndistress;"j\'ai froid; très froid"\nthanks;merci\n\n')
    assert read_examples(handle) == [("distress", "j'ai froid; très froid"), ("thanks", "merci")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Je suis TOMBÉE !!!", "je suis tombe"),
        ("oui ?", "oui emo_question"),
        ("merci 🙏", "merci emo_merci"),
        # An emoji the rule file does not map still says something to the model.
        ("🛑", "emo_octagonal_sign"),
        ("a\x00b\x1bc", "a b c"),
        ("g pa mangé", "j ai pas mange"),
    ],
)
def test_model_text(text: str, expected: str) -> None:
    assert model_text(text) == expected


def test_model_text_is_capped() -> None:
    assert len(model_text("tombé " * 5_000)) <= MODEL_MAX_CHARS


# --- Training and prediction ------------------------------------------------------------


def test_training_is_deterministic_and_quick() -> None:
    examples = list(corpus_examples())
    started = time.perf_counter()
    first = train(examples)
    elapsed = time.perf_counter() - started
    second = train(examples)
    for text in SAMPLE:
        assert first.probabilities(text) == second.probabilities(text)
    # About half a second on one quiet core; the bound leaves room for a busy CI machine.
    assert elapsed < 10


def test_the_fast_scorer_matches_scikit_learn(model: ReplyModel) -> None:
    texts = [text for _, text in corpus_examples()[::25]] + SAMPLE + ["x" * 20_000, "\x00\xff"]
    expected = model.predict_proba_batch(texts)
    found = np.asarray([[model.probabilities(t)[label] for label in model.labels] for t in texts])
    np.testing.assert_allclose(found, expected, rtol=0, atol=1e-9)


def test_probabilities_cover_the_five_labels(model: ReplyModel) -> None:
    for text in SAMPLE:
        probabilities = model.probabilities(text)
        assert set(probabilities) == set(LABELS)
        assert sum(probabilities.values()) == pytest.approx(1.0)
    assert max(model.probabilities("STOP").items(), key=lambda kv: kv[1])[0] == "opt_out"
    assert model.probabilities("au secours je suis tombée")["distress"] > 0.9


def test_empty_and_function_words_give_no_evidence(model: ReplyModel) -> None:
    assert not model.view("").evidence
    assert not model.view("j'ai").evidence
    assert not model.view("\x00\x01").evidence
    assert model.view("j'ai faim").evidence


def test_top_features_explain_the_label(model: ReplyModel) -> None:
    features = model.top_features("je suis tombée dans l'escalier", "distress", 5)
    assert len(features) == 5
    weights = [weight for _, weight in features]
    assert weights == sorted(weights, reverse=True) and weights[-1] > 0
    assert any("tomb" in name for name, _ in features)
    assert model.top_features("", "distress") == []


# --- Cross-validation ---------------------------------------------------------------------


def test_cross_validation_figures_on_the_corpus(corpus_cv: CrossValidation) -> None:
    """5-fold CV: about 91 % accuracy and 0.27 log-loss for the model alone."""
    assert corpus_cv.accuracy >= 0.89
    assert corpus_cv.log_loss <= 0.32
    assert corpus_cv.recall["opt_out"] >= 0.9 and corpus_cv.precision["opt_out"] >= 0.93
    assert sum(corpus_cv.confusion.values()) == len(corpus_examples())


def test_the_cv_threshold_keeps_99_percent_of_distress(corpus_cv: CrossValidation) -> None:
    assert corpus_cv.distress_recall_at_threshold >= TARGET_DISTRESS_RECALL
    assert corpus_cv.distress_recall_with_rules is not None
    assert corpus_cv.distress_recall_with_rules >= TARGET_DISTRESS_RECALL
    # Rules catch part of the distress: the model may then be much stricter, which
    # halves (or better) the false alarms on the other labels.
    assert corpus_cv.distress_threshold_with_rules is not None
    assert corpus_cv.distress_threshold_with_rules > 3 * corpus_cv.distress_threshold
    assert corpus_cv.non_distress_flagged_with_rules is not None
    assert corpus_cv.non_distress_flagged_with_rules < corpus_cv.non_distress_above_threshold / 2
    assert min(corpus_cv.fold_recalls_with_rules or ()) >= 0.97


# --- Staff corrections ----------------------------------------------------------------------

CORRECTIONS = [
    ("distress", "je suis zorglubée"),
    ("distress", "ma voisine est zorglubée depuis hier"),
    ("distress", "zorglubé, venez vite"),
    ("distress", "mon mari est complètement zorglubé"),
]


def test_corrections_change_the_model_and_are_cached_by_digest(model: ReplyModel) -> None:
    text = "maman est zorglubée ce soir"
    before = model.probabilities(text)["distress"]
    corrected = model_with_corrections(CORRECTIONS)
    after = corrected.probabilities(text)["distress"]
    assert after > before + 0.2
    assert after > 0.5
    # Everything else is essentially the same model.
    assert corrected.probabilities("STOP")["opt_out"] > 0.95
    assert model_with_corrections(list(CORRECTIONS)) is corrected
    assert model_with_corrections(CORRECTIONS[:2]) is not corrected
    assert model_with_corrections([]) is default_model()
    assert corrections_digest(CORRECTIONS) != corrections_digest(CORRECTIONS[::-1])
    assert CORRECTION_WEIGHT > 1


def test_a_correction_replaces_the_corpus_label_of_the_same_text() -> None:
    assert ("thanks", "mersi") in corpus_examples()
    corrected = model_with_corrections([("other", "mersi")])
    assert default_model().probabilities("mersi")["thanks"] > 0.5
    assert corrected.probabilities("mersi")["other"] > 0.5


def test_unknown_labels_are_refused() -> None:
    with pytest.raises(ValueError, match="spam"):
        train([("spam", "hello")])


# --- The rules' side: what stops a distress rule, and what the model then reads ----------

# (text, label, opt_out_requested) by the rules alone.
RULE_CASES = [
    # Negations, past events, hypotheses and information questions ([distress] unless in
    # the rule file): these were false alarms before issue 9.
    ("ça va mieux depuis ma chute", "thanks", False),
    ("je ne suis plus à la rue", "other", False),
    ("je suis tombée le mois dernier mais maintenant ça va", "thanks", False),
    ("j'étais à la rue l'an dernier, maintenant j'ai un logement", "other", False),
    ("on ne m'a pas expulsée finalement", "other", False),
    ("je me suis relevée toute seule", "other", False),
    ("la grippe est passée, merci", "thanks", False),
    ("pas de chute cette année", "other", False),
    ("j'ai eu peur mais tout va bien", "thanks", False),
    ("si je tombe, qui dois-je appeler ?", "other", False),
    ("en cas de canicule, vous ouvrez une salle ?", "other", False),
    ("vous organisez un atelier prévention des chutes ?", "other", False),
    ("le 0800 ne répond plus", "other", False),
    ("arrêtez de me harceler avec vos sms", "opt_out", True),
    # Distress said indirectly (rules added with issue 9).
    ("merci pour tout, adieu", "distress", False),
    ("j'ai avalé tous mes cachets", "distress", False),
    ("je ne veux plus vivre", "distress", False),
    ("ma voisine ne répond plus depuis 3 jours", "distress", False),
]


@pytest.mark.parametrize(("text", "label", "opt_out"), RULE_CASES)
def test_rules_after_issue_9(text: str, label: str, opt_out: bool) -> None:
    result = classify(text)
    assert (result.label, result.opt_out_requested) == (label, opt_out), result


def test_distress_section_applies_to_every_distress_rule(tmp_path: Path) -> None:
    """A CCAS file's [distress] passages stop every distress rule, shipped or its own."""
    extra = tmp_path / "ccas.toml"
    extra.write_text(
        "[distress]\nunless = ['\\bpour de rire\\b(?: \\w+){0,3}']\n"
        "hedges = ['(?:\\b\\w+ ){0,3}même pas mal\\b']\n",
        encoding="utf-8",
    )
    rules = load_rules(extra)
    assert classify("je suis tombée", rules).label == "distress"
    assert classify("pour de rire je suis tombée", rules).label != "distress"
    assert classify("pour de rire je suis tombée", rules).discounted is not None
    assert classify("je suis tombée, même pas mal", load_rules()).label == "distress"
    hedged = classify("je suis tombée, même pas mal", rules)
    assert hedged.label != "distress" and hedged.discounted is None


def test_a_stopped_distress_rule_leaves_the_text_it_discounted() -> None:
    """Negated or past passages are blanked for the model; minimised ones are not."""
    result = classify("je ne suis plus à la rue, merci")
    assert result.label == "thanks"
    assert result.discounted is not None
    assert "rue" not in result.discounted and "merci" in result.discounted
    assert classify("je suis à la rue").discounted is None
    # "un peu seule ... mais ça va" stops the rule (a hedge) but stays evidence.
    assert classify("un peu seule le dimanche mais ça va").discounted is None

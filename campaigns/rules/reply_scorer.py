"""Prediction of the reply model without scikit-learn's per-call overhead.

For one short text scikit-learn's transform and predict_proba checks cost about a
millisecond, more than the rules and the model together. The fitted vocabularies, idf
weights and coefficients are copied out once; a prediction is then a few dictionary
look-ups and one small matrix product giving the same TF-IDF vector and the same
softmax (tests/test_reply_model.py compares the two on the corpus).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline


@dataclass(frozen=True)
class _Block:
    """One TF-IDF vectoriser of the union, copied out of scikit-learn."""

    analyse: Any  # the vectoriser's own analyser: same n-grams as at training
    vocabulary: dict[str, int]
    idf: np.ndarray
    offset: int
    lookup: Any  # n-gram -> column + 1, or None (a bound dict.get)
    characters: bool
    # word -> columns + 1 of its character n-grams (see LinearScorer._character_columns)
    words: dict[str, tuple[int, ...]] = field(default_factory=dict)


# About 10 MB at most; a reply's words are overwhelmingly common ones.
_MAX_CACHED_WORDS = 100_000


class LinearScorer:
    """Sparse TF-IDF (sublinear tf, l2 per block) times the coefficients, then softmax."""

    def __init__(self, pipeline: Pipeline) -> None:
        union: FeatureUnion = pipeline.named_steps["features"]
        classifier: LogisticRegression = pipeline.named_steps["classifier"]
        self.blocks: list[_Block] = []
        offset = 0
        for _, vectoriser in union.transformer_list:
            vocabulary = {str(k): int(v) for k, v in vectoriser.vocabulary_.items()}
            idf = np.asarray(vectoriser.idf_, dtype=np.float64)
            shifted = {gram: column + 1 for gram, column in vocabulary.items()}
            self.blocks.append(
                _Block(
                    vectoriser.build_analyzer(),
                    vocabulary,
                    idf,
                    offset,
                    shifted.get,
                    characters=vectoriser.analyzer != "word",
                )
            )
            offset += len(vocabulary)
        # Features in rows: one fancy-indexing call gathers a text's few hundred rows.
        self.weights = np.ascontiguousarray(classifier.coef_.T, dtype=np.float64)
        self.intercept = np.asarray(classifier.intercept_, dtype=np.float64)
        self.classes = [str(label) for label in classifier.classes_]

    def features(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Column indices and TF-IDF values of ``text`` (already a model text)."""
        indices: list[np.ndarray] = []
        values: list[np.ndarray] = []
        for block in self.blocks:
            if block.characters:
                counts = Counter(self._character_columns(block, text))
            else:
                counts = Counter(filter(None, map(block.lookup, block.analyse(text))))
            if not counts:
                continue
            # Column 0 of each block is shifted by one in `lookup` so that filter(None)
            # keeps it; undone here.
            local = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts)) - 1
            tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
            weighted = (1.0 + np.log(tf)) * block.idf[local]
            weighted /= math.sqrt(float(weighted @ weighted))
            indices.append(local + block.offset)
            values.append(weighted)
        if not indices:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        return np.concatenate(indices), np.concatenate(values)

    @staticmethod
    def _character_columns(block: _Block, text: str) -> list[int]:
        # char_wb n-grams never cross a space: a text's are its words' n-grams, and the
        # same few thousand words come back reply after reply. Their columns (+1) are
        # kept per word; a full cache just stops growing.
        columns: list[int] = []
        cache = block.words
        for word in text.split():
            found = cache.get(word)
            if found is None:
                found = tuple(filter(None, map(block.lookup, block.analyse(word))))
                if len(cache) < _MAX_CACHED_WORDS:
                    cache[word] = found
            columns.extend(found)
        return columns

    def scores(self, indices: np.ndarray, values: np.ndarray) -> np.ndarray:
        result: np.ndarray = values @ self.weights[indices] + self.intercept
        return result

    @staticmethod
    def softmax(scores: np.ndarray) -> np.ndarray:
        exp = np.exp(scores - scores.max())
        result: np.ndarray = exp / exp.sum()
        return result

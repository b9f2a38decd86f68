"""The reply model this process uses: the corpus model, retrained with staff corrections.

Corrections are read from the database at most once a minute; when they changed, the
model is retrained in a thread (a few seconds) while replies keep being classified with
the previous one, so the event loop never waits on training.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from campaigns.replies.inbox import corrections_for_training
from campaigns.rules.reply_model import (
    ReplyModel,
    corpus_examples,
    corrections_digest,
    cross_validate,
    default_model,
    model_with_corrections,
)

__all__ = ["current_model", "model_figures"]

log = logging.getLogger(__name__)

REFRESH_EVERY = 60.0  # seconds between two looks at the corrections


@dataclass
class _State:
    model: ReplyModel | None = None
    digest: str | None = None
    corrections: int = 0
    checked_at: float = -REFRESH_EVERY
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    figures: dict[str, Any] | None = None


_state = _State()


async def current_model() -> ReplyModel:
    """The model to classify with now (trained at first use, off the event loop)."""
    state = _state
    if state.model is not None and time.monotonic() - state.checked_at < REFRESH_EVERY:
        return state.model
    async with state.lock:
        if state.model is not None and time.monotonic() - state.checked_at < REFRESH_EVERY:
            return state.model
        corrections = await corrections_for_training()
        digest = corrections_digest(corrections)
        if state.model is None or digest != state.digest:
            started = time.perf_counter()
            state.model = await asyncio.to_thread(model_with_corrections, corrections)
            log.info(
                "reply model trained with %d corrections in %.1f s",
                len(corrections),
                time.perf_counter() - started,
            )
            state.digest, state.corrections = digest, len(corrections)
        state.checked_at = time.monotonic()
        return state.model


async def model_figures() -> dict[str, Any]:
    """Cross-validated figures of the corpus model and the corrections learned from.

    Cross-validation trains the model five times: computed once per process, in a thread.
    """
    state = _state
    if state.figures is None:
        report = await asyncio.to_thread(cross_validate, corpus_examples())
        state.figures = {
            "folds": report.folds,
            "accuracy": round(report.accuracy, 4),
            "precision": {k: round(v, 4) for k, v in report.precision.items()},
            "recall": {k: round(v, 4) for k, v in report.recall.items()},
            "support": dict(report.support),
            "distress_threshold": round(report.distress_threshold, 4),
            "distress_recall_at_threshold": round(report.distress_recall_at_threshold, 4),
            "non_distress_above_threshold": round(report.non_distress_above_threshold, 4),
        }
    await current_model()
    return {
        "cross_validation": state.figures,
        "corrections": state.corrections,
        "corpus_size": len(corpus_examples()),
    }


def reset_for_tests() -> None:
    """Forget the cached model and figures (tests change corrections between cases)."""
    global _state
    _state = _State()


async def warm_up() -> None:
    """Train the corpus model before the first reply arrives (worker start-up)."""
    await asyncio.to_thread(default_model)

"""On replies written by someone who never saw the corpus, routing keeps its promises.

tests/data/replies_heldout.csv was written independently of the training corpus; the
figures here are the honest ones (the model and the rules never learned from it).
"""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

from campaigns.replies.routing import queue_for
from campaigns.rules.reply_model import default_model
from campaigns.rules.reply_policy import decide

HELDOUT = Path(__file__).resolve().parent / "data" / "replies_heldout.csv"


def test_distress_reaches_urgence_and_nobody_is_silenced_by_mistake() -> None:
    with HELDOUT.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter=";"))[1:]
    model = default_model()
    known_sender = SimpleNamespace(candidate_ids=[1])
    distress = to_urgence = unread_nowhere = false_alarms = silenced = 0
    for label, text in rows:
        decision = decide(text, model=model)
        queue = queue_for(known_sender, decision)  # type: ignore[arg-type]
        if label == "distress":
            distress += 1
            to_urgence += queue == "urgence"
            unread_nowhere += queue is None
        else:
            false_alarms += queue == "urgence"
            silenced += decision.auto_opt_out and label != "opt_out"
    assert distress >= 200
    assert to_urgence / distress >= 0.98
    assert unread_nowhere == 0  # no distress reply is left without a person to read it
    assert silenced == 0  # no number silenced by a reply that is not an opt-out
    assert false_alarms / (len(rows) - distress) <= 0.10

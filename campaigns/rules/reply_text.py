"""The text the reply model reads: capped, emoji named, folded, collapsed, SMS-expanded.

The same normalisation as the rules' (classification.normalise_reply) with the shipped
rule file's emoji and SMS tables, plus what only the model needs: a length cap, "?"
kept as a word, and names for emoji the rule file does not map.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from campaigns.rules.classification import (
    RuleSet,
    collapse_letters,
    default_rules_path,
    fold,
    load_rules,
    strip_emoji_decoration,
)

# Replies are SMS, a few hundred characters at most once reassembled; a 10,000-character
# paste must not cost more than a normal reply, and its first part carries the meaning.
MODEL_MAX_CHARS = 1_000

# Words that carry no meaning of their own. A text made of nothing else ("j'ai", or
# what is left of "j'ai failli tomber" once the rules blank the passage) gets the
# class priors plus noise from the model, and distress is the commonest class.
FUNCTION_WORDS = frozenset(
    word
    for group in (
        "je j tu il elle on nous vous ils elles me m te t se s moi toi lui",
        "le la les l un une des de du d a au aux et ou mais donc or ni car",
        "ai as avons avez ont suis es est sommes etes sont etais etait",
        "ce c ca cela ceci qui que qu y en ne n pour par avec sur dans",
        "mon ma mes ton ta tes son sa ses notre nos votre vos leur leurs",
    )
    for word in group.split()
)
_NON_WORD = re.compile(r"[^a-z0-9_]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# A question mark changes the meaning ("oui ?" asks, "oui" accepts); it becomes a word.
_QUESTION = re.compile(r"[?¿？]+")
_PICTOGRAPH_CATEGORIES = {"So", "Sk", "Cs", "Co"}


@functools.lru_cache(maxsize=1)
def shipped_rules() -> RuleSet:
    """The shipped rule file alone: its emoji and SMS tables shape the model's text.

    A CCAS's extra rule file (``CAMPAIGNS_REPLY_RULES``) changes the rules, never the
    text the model was trained on.
    """
    return load_rules(default_rules_path(), replace=True)


def model_text(text: str, rules: RuleSet | None = None) -> str:
    """The text the model sees: capped, emoji named, folded, collapsed, SMS-expanded.

    Like :func:`classification.normalise_reply`, plus: the length cap, a ``emo_question``
    word for "?", and a name for emoji the rule file does not map ("🛑" becomes
    ``emo_octagonal_sign``), so that an emoji-only reply still has features.
    """
    ruleset = rules if rules is not None else shipped_rules()
    text = _CONTROL.sub(" ", strip_emoji_decoration(text[:MODEL_MAX_CHARS]))
    for symbol, word in ruleset.emoji.items():
        if symbol in text:
            text = text.replace(symbol, f" {word} ")
    text = _QUESTION.sub(" emo_question ", text)
    if not text.isascii():
        text = "".join(_name_pictograph(c) if ord(c) > 0x2000 else c for c in text)
    words = collapse_letters(_NON_WORD.sub(" ", fold(text))).split()
    return " ".join(ruleset.sms.get(word, word) for word in words)


def _name_pictograph(char: str) -> str:
    if unicodedata.category(char) not in _PICTOGRAPH_CATEGORIES:
        return char
    name = unicodedata.name(char, "")
    return f" emo_{'_'.join(name.lower().split())} " if name else " "

"""The fast SMS analysis gives exactly what the character-by-character one gave.

`analyse` scans texts with regular expressions and cuts parts by slicing when every
character costs one unit; the reference below is the plain walk it replaced (per
character costs, greedy split). Random texts mix what matters: GSM-7 letters,
two-septet escapes, typographic characters the normalisation replaces, accents folding
changes, letters outside GSM-7 and characters beyond the BMP, around the part limits.
"""

from __future__ import annotations

import random

import pytest

from campaigns.rules.sms_encoding import (
    _SEPTETS,
    GSM7,
    UCS2,
    _fold_char,
    _split,
    analyse,
    fold_accents,
    is_gsm7,
    normalise_lossless,
    sent_form,
)

ALPHABET = (
    "abcdefghijklmnopqrstuvwxyzABCDEZ0123456789 .,;:!?'\"()-/@£$¥èéùìòÇØøÅåÆæßÉÄÖÑÜäöñüà§¿¡_"
    "\n\r{}[]~|\\^€\f"  # the extension table: two septets each
    "‘’“”«»–—…\u00a0\u202f\u2007"  # replaced by the lossless normalisation
    "êâîôûëïçœŒÈÊÂłı"  # outside GSM-7, most of them foldable
    "😜🌸𝄞中\x1b"  # beyond the BMP, a CJK letter, the escape character itself
)  # fmt: skip


def _reference(text: str, *, normalise: bool, fold: bool) -> tuple:
    normalised = folded = False
    if normalise:
        changed = normalise_lossless(text)
        normalised, text = changed != text, changed
    if fold:
        changed = "".join(_fold_char(ch) for ch in text)
        folded, text = changed != text, changed
    ucs2_chars = tuple(dict.fromkeys(ch for ch in text if ch not in _SEPTETS))
    encoding = UCS2 if ucs2_chars else GSM7
    if encoding == GSM7:
        costs = [_SEPTETS[ch] for ch in text]
    else:
        costs = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    single, per_part = (160, 153) if encoding == GSM7 else (70, 67)
    parts = _split(text, costs, single, per_part)
    return (text, encoding, len(parts), parts, sum(costs), ucs2_chars, normalised, folded)


def _texts(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        # Mostly plain text (the common case), sometimes dense in special characters.
        weights = [rng.choice((0, 0.01, 0.05, 0.3)) for _ in ALPHABET[64:]]
        population = list(ALPHABET)
        length = rng.choice((0, 1, rng.randrange(60, 75), rng.randrange(150, 165),
                             rng.randrange(300, 320), rng.randrange(0, 500)))  # fmt: skip
        chars = [
            rng.choices(ALPHABET[64:], weights)[0]
            if any(weights) and rng.random() < 0.2
            else rng.choice(population[:64])
            for _ in range(length)
        ]
        texts.append("".join(chars))
    return texts


@pytest.mark.parametrize("seed", range(4))
def test_analysis_matches_the_reference(seed: int) -> None:
    for text in _texts(seed, 1500):
        for normalise, fold in ((True, False), (True, True), (False, False), (False, True)):
            fast = analyse(text, normalise=normalise, fold=fold)
            got = (fast.text, fast.encoding, fast.segments, fast.parts, fast.units,
                   fast.ucs2_chars, fast.normalised, fast.folded)  # fmt: skip
            expected = _reference(text, normalise=normalise, fold=fold)
            assert got == expected, (text, normalise)
            assert sent_form(text, normalise=normalise, fold=fold) == expected[:3]


def test_helpers_match_the_reference() -> None:
    for text in _texts(9, 2000):
        assert is_gsm7(text) == all(ch in _SEPTETS for ch in text)
        assert fold_accents(text) == "".join(_fold_char(ch) for ch in text)

"""SMS encoding and segment counting: reference vectors, French texts, and the gsm0338 codec."""

from __future__ import annotations

import random
from decimal import Decimal

import gsm0338  # noqa: F401  (registers the "gsm03.38" codec)
import pytest

from campaigns.rules.sms_encoding import (
    GSM7,
    GSM7_BASIC,
    GSM7_EXTENSION,
    UCS2,
    analyse,
    fold_accents,
    is_gsm7,
    normalise_lossless,
    price_estimate,
)

NBSP, NNBSP, FIGURE_SPACE = "\u00a0", "\u202f", "\u2007"


def _codec_septets(text: str) -> int | None:
    """Septets per the gsm0338 codec (one byte per septet), or None if it cannot encode."""
    try:
        return len(text.encode("gsm03.38"))
    except UnicodeEncodeError:
        return None


# --- reference vectors (DOMAIN.md) ------------------------------------------------------

REFERENCE_VECTORS = [
    # (text, encoding, segments, units)
    ("{" + "a" * 158, GSM7, 1, 160),
    ("{" + "a" * 159, GSM7, 2, 161),
    ("😜" + "a" * 68, UCS2, 1, 70),
    ("😜" + "a" * 69, UCS2, 2, 71),
    ("7" * 407, GSM7, 3, 407),
    ("a" * 160, GSM7, 1, 160),
    ("a" * 161, GSM7, 2, 161),
    ("a" * 306, GSM7, 2, 306),
    ("a" * 307, GSM7, 3, 307),
    ("ê" * 70, UCS2, 1, 70),
    ("ê" * 71, UCS2, 2, 71),
    ("ê" * 134, UCS2, 2, 134),
    ("ê" * 135, UCS2, 3, 135),
    ("€" * 80, GSM7, 1, 160),
    ("€" * 81, GSM7, 2, 162),
    # An escape pair that would straddle 153 moves whole to the next part: ceil(306/153)
    # says 2, the real split is 3.
    ("a" * 152 + "{" + "a" * 152, GSM7, 3, 306),
    # Same for a surrogate pair at the 67-unit boundary: ceil(134/67) says 2, it is 3.
    ("ê" * 66 + "😜" + "ê" * 66, UCS2, 3, 134),
]


@pytest.mark.parametrize(("text", "encoding", "segments", "units"), REFERENCE_VECTORS)
def test_reference_vectors(text: str, encoding: str, segments: int, units: int) -> None:
    """Encoding, segment and unit counts match the reference and boundary vectors."""
    result = analyse(text)
    assert (result.encoding, result.segments, result.units) == (encoding, segments, units)
    assert len(result.parts) == segments


def test_empty_text_is_one_segment_of_zero_units() -> None:
    """An empty text is billed as one part: 1 segment, 0 units, one empty part."""
    result = analyse("")
    assert (result.encoding, result.segments, result.units, result.parts) == (GSM7, 1, 0, ("",))


# --- French sentences ----------------------------------------------------------------------

FRENCH = [
    # (input, sent text, encoding, ucs2_chars, normalised)
    ("Bonjour, le CCAS vous écrit.", "Bonjour, le CCAS vous écrit.", GSM7, (), False),
    ("Où êtes-vous ?", "Où êtes-vous ?", UCS2, ("ê",), False),
    ("Le garçon a reçu", "Le garçon a reçu", UCS2, ("ç",), False),
    ("Ça va ? Ça va.", "Ça va ? Ça va.", GSM7, (), False),
    (f"Appelez-nous{NBSP}!", "Appelez-nous !", GSM7, (), True),
    (f"Comment allez-vous{NNBSP}?", "Comment allez-vous ?", GSM7, (), True),
    (f"Horaires{NBSP}: 9h{FIGURE_SPACE}-{FIGURE_SPACE}17h", "Horaires : 9h - 17h", GSM7, (), True),
    (f"Le «{NBSP}repas partagé{NBSP}» est servi.", 'Le "repas partagé" est servi.', GSM7, (), True),
    ("Il a dit « oui » puis « non ».", 'Il a dit "oui" puis "non".', GSM7, (), True),
    ("C’est l’heure — venez…", "C'est l'heure - venez...", GSM7, (), True),
    ("“Bienvenue” – ‘à tous’", "\"Bienvenue\" - 'à tous'", GSM7, (), True),
    ("Fête de Noël à l’EHPAD", "Fête de Noël à l'EHPAD", UCS2, ("ê", "ë"), True),
    ("Œuvre, cœur, sœur", "Œuvre, cœur, sœur", UCS2, ("Œ", "œ"), False),
    ("À bientôt", "À bientôt", UCS2, ("À", "ô"), False),
    ("Joyeux anniversaire 🎂🎉🎂", "Joyeux anniversaire 🎂🎉🎂", UCS2, ("🎂", "🎉"), False),
]


@pytest.mark.parametrize(("given", "sent", "encoding", "ucs2_chars", "normalised"), FRENCH)
def test_french_texts(
    given: str, sent: str, encoding: str, ucs2_chars: tuple[str, ...], normalised: bool
) -> None:
    """Lossless normalisation keeps typography in GSM-7; real accents still force UCS-2."""
    result = analyse(given)
    assert result.text == sent
    assert result.encoding == encoding
    assert result.ucs2_chars == ucs2_chars
    assert result.normalised is normalised
    assert result.folded is False


def test_without_normalisation_typography_forces_ucs2() -> None:
    """normalise=False sends the text as written, so a no-break space costs UCS-2."""
    result = analyse(f"Appelez-nous{NBSP}!", normalise=False)
    assert result.text == f"Appelez-nous{NBSP}!"
    assert (result.encoding, result.ucs2_chars, result.normalised) == (UCS2, (NBSP,), False)


NORMALISE = [
    ("«\u00a0x\u00a0»", '"x"'),
    ("« x »", '"x"'),
    ("«x»", '"x"'),
    ("‹ x ›", "' x '"),
    ("a – b — c ‐ d", "a - b - c - d"),
    ("attendez…", "attendez..."),
    ("ê ç œ é", "ê ç œ é"),  # letters are not its business
    ("😜", "😜"),
]


@pytest.mark.parametrize(("given", "expected"), NORMALISE)
def test_normalise_lossless(given: str, expected: str) -> None:
    """normalise_lossless touches quotes, dashes, ellipsis and spaces only."""
    assert normalise_lossless(given) == expected


FOLD = [
    ("être", "etre"),
    ("château", "chateau"),
    ("île", "ile"),
    ("hôpital", "hopital"),
    ("sûr", "sur"),
    ("Noël", "Noel"),
    ("maïs", "mais"),
    ("L'Haÿ-les-Roses", "L'Hay-les-Roses"),
    ("garçon", "garcon"),
    ("cœur", "coeur"),
    ("Œuvre", "OEuvre"),
    ("À bientôt", "A bientot"),
    ("ÈÊËÎÏÔÛÙÂ", "EEEIIOUUA"),
    ("é è à ù ì ò É Ç", "é è à ù ì ò É Ç"),  # GSM-7 letters are kept
    ("Ä Ö Ñ Ü ä ö ñ ü Å å ß", "Ä Ö Ñ Ü ä ö ñ ü Å å ß"),
    ("🎂", "🎂"),  # no close letter: left alone
]


@pytest.mark.parametrize(("given", "expected"), FOLD)
def test_fold_accents(given: str, expected: str) -> None:
    """fold_accents maps letters GSM-7 lacks to their closest GSM-7 letters."""
    assert fold_accents(given) == expected


def test_fold_only_when_asked() -> None:
    """Folding is opt-in; when asked, it turns a UCS-2 French text into GSM-7 and says so."""
    text = "Fête de Noël au château, à bientôt !"
    assert analyse(text).encoding == UCS2
    folded = analyse(text, fold=True)
    assert folded.text == "Fete de Noel au chateau, à bientot !"
    assert (folded.encoding, folded.folded, folded.normalised) == (GSM7, True, False)


def test_emoji_reported_and_counted_as_two_units() -> None:
    """An emoji forces UCS-2, is reported once, and counts as a surrogate pair."""
    result = analyse("Merci 😜 et 😜")
    assert result.encoding == UCS2
    assert result.ucs2_chars == ("😜",)
    assert result.units == len("Merci  et ") + 4


def test_remaining_units() -> None:
    """remaining is what is left in the last part before one more segment."""
    assert analyse("a" * 150).remaining == 10
    assert analyse("a" * 200).remaining == 153 - 47
    assert analyse("ê" * 60).remaining == 10


# --- parts -------------------------------------------------------------------------------


def _corpus(size: int, seed: int) -> list[str]:
    """Random texts mixing GSM-7, extension characters, French accents and emoji."""
    rng = random.Random(seed)
    gsm = list(GSM7_BASIC) + list(GSM7_EXTENSION)
    french = [*"êâîôûëïÿçœŒÈ«»’…", NBSP, NNBSP]
    emoji = ["😜", "🎂", "👍🏽", "❤", "☀"]
    texts = []
    for _ in range(size):
        pool = gsm if rng.random() < 0.6 else gsm * 6 + french + emoji
        texts.append("".join(rng.choice(pool) for _ in range(rng.randint(0, 480))))
    return texts


def _units(part: str, encoding: str) -> int:
    if encoding == GSM7:
        septets = _codec_septets(part)
        assert septets is not None
        return septets
    return len(part.encode("utf-16-le")) // 2


def test_parts_rejoin_and_never_split_a_pair() -> None:
    """Parts re-join to the text, fit their limit, and each is whole and valid on its own."""
    for text in _corpus(600, seed=7):
        result = analyse(text, normalise=False)
        assert "".join(result.parts) == result.text
        limit = (153 if result.encoding == GSM7 else 67) if result.segments > 1 else 10**6
        for index, part in enumerate(result.parts):
            units = _units(part, result.encoding)
            assert units <= limit
            # Each part stands alone: a lone surrogate would not survive a strict encode.
            part.encode("utf-16-le", errors="strict")
            if index < len(result.parts) - 1:
                # Greedy: the next part's first character did not fit in this one.
                next_char = result.parts[index + 1][0]
                assert units + _units(next_char, result.encoding) > limit
        assert sum(_units(p, result.encoding) for p in result.parts) == result.units


def test_part_boundary_keeps_escape_pair_whole() -> None:
    """The "{" that would straddle septets 153 and 154 starts the second part."""
    result = analyse("a" * 152 + "{" + "a" * 152)
    assert [len(p) for p in result.parts] == [152, 152, 1]
    assert result.parts[1].startswith("{")


def test_part_boundary_keeps_surrogate_pair_whole() -> None:
    """The emoji that would straddle units 67 and 68 starts the second part."""
    result = analyse("ê" * 66 + "😜" + "ê" * 66)
    assert result.parts[0] == "ê" * 66
    assert result.parts[1].startswith("😜")


# --- cross-check against the gsm0338 codec ---------------------------------------------------


def test_character_set_agrees_with_codec() -> None:
    """Every BMP character: GSM-7 for us exactly when the codec encodes it, same septets.

    Two deliberate differences: lowercase ç (the codec refuses it too; checked here) and
    the escape character U+001B, which the codec encodes and we never send as GSM-7.
    """
    for code in range(0x10000):
        ch = chr(code)
        if 0xD800 <= code <= 0xDFFF:
            continue
        septets = _codec_septets(ch)
        if ch == "\x1b":
            assert septets == 1 and not is_gsm7(ch)
            continue
        assert is_gsm7(ch) is (septets is not None), repr(ch)
        if septets is not None:
            assert analyse(ch, normalise=False).units == septets
    assert _codec_septets("ç") is None and not is_gsm7("ç")
    assert _codec_septets("Ç") == 1 and is_gsm7("Ç")


def test_corpus_agrees_with_codec() -> None:
    """On a generated corpus, whatever the codec encodes is GSM-7 here with the same septets."""
    encodable = 0
    for text in _corpus(1500, seed=2024):
        septets = _codec_septets(text)
        result = analyse(text, normalise=False)
        if septets is None:
            assert result.encoding == UCS2
            assert result.units == len(text.encode("utf-16-le")) // 2
        else:
            encodable += 1
            assert result.encoding == GSM7
            assert result.units == septets
    assert encodable > 500  # the corpus really exercises the GSM-7 side


# --- price -------------------------------------------------------------------------------


PRICES = [
    (1, 900, Decimal("0.045"), Decimal("40.500")),
    (2, 2000, Decimal("0.05"), Decimal("200.00")),
    (3, 0, Decimal("0.05"), Decimal("0")),
]


@pytest.mark.parametrize(("segments", "recipients", "price", "expected"), PRICES)
def test_price_estimate(segments: int, recipients: int, price: Decimal, expected: Decimal) -> None:
    """Cost is segments x recipients x price per part, exactly, in Decimal."""
    assert price_estimate(segments, recipients, price) == expected


def test_price_estimate_refuses_negative() -> None:
    """A negative count or price is a programming error."""
    with pytest.raises(ValueError):
        price_estimate(-1, 10, Decimal("0.05"))

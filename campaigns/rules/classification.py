"""Classify a French SMS reply (opt_out, callback, distress, thanks, other) with data-file rules.

The rules live in ``campaigns/rules/data/reply_rules.toml`` so that a CCAS can extend them
without touching code: its own file (the ``reply_rules`` setting) is passed to
:func:`configured_rules` and :func:`check_rules`; this module never reads the environment.
Each rule's regular expressions are applied to a normalised
text (see :func:`normalise_reply`): lower case, emoji mapped to words, accents folded,
punctuation turned into spaces, repeated letters collapsed ("merciii" -> "merci",
"appelez" -> "apelez", "tombée" -> "tombe"), SMS spellings expanded ("jsui" -> "je
suis"). Patterns go through the same accent folding and letter collapsing when they
are loaded, so a rule may be written "tombée" or "appelez".

Among the rules that fire, the highest priority decides the label; distress rules
carry the highest priorities so that a distress signal is never hidden by an opt-out
or a thank-you. An opt-out rule that fired but did not win still sets
``opt_out_requested`` ("STOP je suis tombée" is distress and an opt-out request).

An ``opt_out`` reply is ``opt_out_only`` when nothing is left once the opt-out rules'
matches are cut out and the remaining words are all in the file's ``[opt_out] ignore``
list (politeness, "sms", "svp"...): only then does nobody need to read it. "STOP je me
suis cassé la jambe" keeps words that mean something, so a caseworker sees it even when
no distress rule knows them.

The file's ``[distress]`` section lists passages every distress rule ignores: ``unless``
for negations, past events, hypotheses and information questions ("je ne suis plus à
la rue", "ça va mieux depuis ma chute", "si je tombe, qui j'appelle ?"), ``hedges`` for
minimised statements ("un peu seule le dimanche mais ça va"). When an ``unless``
passage stopped a distress rule, ``Classification.discounted`` is the text without it:
the learned model (reply_policy) judges distress on that, so what the rules know to be
negated is not evidence for the model either; a hedge is, since irony reads the same.
"""

from __future__ import annotations

import functools
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

LABELS = ("opt_out", "callback", "distress", "thanks", "other")
DEFAULT_RULE = "default"
# The Reply model stores the deciding rule id in a 64-character column.
MAX_RULE_ID = 64

_RULE_ID = re.compile(r"^[a-z0-9_][a-z0-9_.-]*$")
_RULE_KEYS = {"id", "label", "priority", "patterns", "unless", "resubscribe", "enabled", "note"}
_SECTIONS = {"normalise", "rule", "opt_out", "distress"}
# Anything that is not a letter, digit or underscore becomes a word break; emoji have
# already been mapped to words such as "emo_merci" by then.
_NON_WORD = re.compile(r"[^a-z0-9_]+")
_LETTER_RUN = re.compile(r"([a-z])\1+")
# In a pattern, collapse a doubled literal letter unless it is escaped ("\bb") or the
# second letter carries a quantifier ("ee?" keeps meaning "e, maybe another e").
_PATTERN_LETTER_RUN = re.compile(r"(?<!\\)([a-z])\1+(?![?*+{])")
# Emoji presentation selectors, joiners and skin tones only decorate a base emoji.
_EMOJI_DECORATION = re.compile("[\ufe0e\ufe0f\u200d\U0001f3fb-\U0001f3ff]")


class RuleFileError(ValueError):
    """A rule file cannot be used; the message names the file and the rule."""


@dataclass(frozen=True)
class Classification:
    label: str
    rule: str
    opt_out_requested: bool
    matched: tuple[str, ...]
    # An opt-out and nothing else worth reading (see the module docstring).
    opt_out_only: bool = False
    # The normalised text with the passages that stopped a distress rule blanked out
    # (a negation, a past event, a hypothesis: "je ne suis plus à la rue"); None when
    # no distress rule was stopped. The learned model reads it to judge distress, so
    # that a passage the rules know to be negated is not evidence for it either.
    discounted: str | None = None


@dataclass(frozen=True)
class Rule:
    id: str
    label: str
    priority: int
    patterns: tuple[re.Pattern[str], ...]
    unless: tuple[re.Pattern[str], ...] = ()
    resubscribe: bool = False
    # The rule file's [distress] passages, the same tuples for every distress rule so
    # that classify masks them once per reply however many distress rules look.
    shared_unless: tuple[re.Pattern[str], ...] = ()
    # Like unless, but for a minimised statement ("un peu seule mais ça va"): it stops
    # the rule, yet the passage still counts for the model (see Classification).
    hedges: tuple[re.Pattern[str], ...] = ()
    # The patterns as one alternation: one search per rule instead of one per pattern
    # (the worker classifies every reply; most rules find nothing).
    any_pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        combined = "|".join(f"(?:{pattern.pattern})" for pattern in self.patterns)
        object.__setattr__(self, "any_pattern", re.compile(combined))

    def fires(self, text: str, cache: dict[tuple[int, int, str], str] | None = None) -> bool:
        """True when a pattern matches outside the spans the ``unless`` patterns cover.

        Masking the negated spans rather than vetoing the whole text keeps
        "je ne suis pas seule" quiet while "je suis seule, une seule question" still fires.
        """
        if not self.any_pattern.search(text):
            return False
        if not (self.unless or self.shared_unless or self.hedges):
            return True
        return self.any_pattern.search(self.masked(text, hedges=True, cache=cache)) is not None

    def masked(
        self, text: str, *, hedges: bool, cache: dict[tuple[int, int, str], str] | None = None
    ) -> str:
        """``text`` with the spans of the unless (and hedges) patterns blanked.

        ``cache``, kept for one text, saves masking the shared passages again for the
        next distress rule.
        """
        for negation in self.unless:
            text = negation.sub(_blank, text)
        shared = self.shared_unless + self.hedges if hedges else self.shared_unless
        key = (id(self.shared_unless), id(self.hedges) if hedges else 0, text)
        if cache is not None and key in cache:
            return cache[key]
        masked = text
        for negation in shared:
            masked = negation.sub(_blank, masked)
        if cache is not None:
            cache[key] = masked
        return masked


def _blank(match: re.Match[str]) -> str:
    return " " * (match.end() - match.start())


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    sms: Mapping[str, str] = field(default_factory=dict)
    emoji: Mapping[str, str] = field(default_factory=dict)
    # Words (whole-word patterns) that add nothing to an opt-out request.
    opt_out_ignore: tuple[re.Pattern[str], ...] = ()


def fold(text: str) -> str:
    """Lower-case and strip accents (œ and æ spelled out), keeping everything else."""
    text = text.lower().replace("œ", "oe").replace("æ", "ae")
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def collapse_letters(text: str) -> str:
    """Reduce every run of a repeated letter to one ("merciii" -> "merci")."""
    return _LETTER_RUN.sub(r"\1", text)


def strip_emoji_decoration(text: str) -> str:
    """Drop presentation selectors, joiners and skin tones, keeping the base emoji."""
    return _EMOJI_DECORATION.sub("", text)


def normalise_reply(text: str, rules: RuleSet | None = None) -> str:
    """The text the rule patterns see: folded, de-punctuated, collapsed, SMS-expanded."""
    ruleset = rules if rules is not None else default_rules()
    text = _EMOJI_DECORATION.sub("", text)
    for symbol, word in ruleset.emoji.items():
        if symbol in text:
            text = text.replace(symbol, f" {word} ")
    words = collapse_letters(_NON_WORD.sub(" ", fold(text))).split()
    return " ".join(ruleset.sms.get(word, word) for word in words)


def classify(text: str, rules: RuleSet | None = None) -> Classification:
    """Classify one reply; the highest-priority rule that fires decides."""
    ruleset = rules if rules is not None else default_rules()
    normalised = normalise_reply(text, ruleset)
    fired: list[Rule] = []
    discounted: str | None = None
    cache: dict[tuple[int, int, str], str] = {}
    for rule in ruleset.rules:
        # Rule.fires, unrolled to tell a rule that found nothing from one stopped.
        if not rule.any_pattern.search(normalised):
            continue
        if not (rule.unless or rule.shared_unless or rule.hedges) or rule.any_pattern.search(
            rule.masked(normalised, hedges=True, cache=cache)
        ):
            fired.append(rule)
        elif rule.label == "distress":
            # Stopped: what its negations and past events cover is no evidence either.
            before = normalised if discounted is None else discounted
            after = rule.masked(before, hedges=False, cache=cache)
            if after != before:
                discounted = after
    opt_out = any(rule.label == "opt_out" for rule in fired)
    matched = tuple(rule.id for rule in fired)
    if not fired:
        return Classification("other", DEFAULT_RULE, False, (), discounted=discounted)
    only = fired[0].label == "opt_out" and _nothing_but_opt_out(normalised, fired, ruleset)
    return Classification(fired[0].label, fired[0].id, opt_out, matched, only, discounted)


def _nothing_but_opt_out(normalised: str, fired: list[Rule], ruleset: RuleSet) -> bool:
    """True when, the opt-out matches cut out, every word left is an ignorable one."""
    kept = list(normalised)
    for rule in fired:
        if rule.label != "opt_out":
            continue
        # Spans found on the whole text, so that anchored patterns (^arret...$) still match.
        for pattern in rule.patterns:
            for match in pattern.finditer(normalised):
                kept[match.start() : match.end()] = " " * (match.end() - match.start())
    words = "".join(kept).split()
    return all(any(p.fullmatch(word) for p in ruleset.opt_out_ignore) for word in words)


def is_resubscribe(text: str, rules: RuleSet | None = None) -> bool:
    """True for a clear request to receive messages again (START, réabonner...).

    A text that also asks to stop is not a resubscription: honouring the opt-out wins.
    """
    ruleset = rules if rules is not None else default_rules()
    result = classify(text, ruleset)
    if result.opt_out_requested:
        return False
    resubscribe_ids = {rule.id for rule in ruleset.rules if rule.resubscribe}
    return any(rule_id in resubscribe_ids for rule_id in result.matched)


# --- Loading -------------------------------------------------------------------------


def default_rules_path() -> Path:
    return Path(str(resources.files("campaigns.rules") / "data" / "reply_rules.toml"))


def load_rules(path: Path | None = None, *, replace: bool = False) -> RuleSet:
    """Load the default rules plus an extra file.

    ``path`` adds rules to the defaults; an extra rule with the id of an earlier one
    replaces it, and ``enabled = false`` switches it off. With ``replace=True`` only
    ``path`` is used.
    """
    if replace:
        if path is None:
            raise ValueError("replace=True needs a path")
        sources = [path]
    else:
        sources = [default_rules_path()]
        if path is not None:
            sources.append(path)
    return _merge(_read(source) for source in sources)


@functools.lru_cache(maxsize=4)
def configured_rules(extra: Path | None) -> RuleSet:
    """The default rules plus the CCAS's own file (the ``reply_rules`` setting), loaded
    once per file: every reply job of a process classifies with the same rule set."""
    return load_rules(extra)


def default_rules() -> RuleSet:
    """The shipped rules alone."""
    return configured_rules(None)


def check_rules(extra: Path | None) -> None:
    """Load the default rules and the CCAS's file now; RuleFileError if bad.

    Called when a web or worker process starts: a typo in the CCAS's file must stop the
    start-up with its message, not fail every reply job while the webhook answers 204.
    """
    configured_rules(extra)


@dataclass
class _FileRules:
    path: Path
    rules: list[tuple[str, Rule | None]]  # None: an id switched off
    sms: dict[str, str]
    emoji: dict[str, str]
    opt_out_ignore: tuple[re.Pattern[str], ...] = ()
    distress_unless: tuple[re.Pattern[str], ...] = ()
    distress_hedges: tuple[re.Pattern[str], ...] = ()


def _read(path: Path) -> _FileRules:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RuleFileError(f"Fichier de règles {path} illisible : {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RuleFileError(f"Fichier de règles {path} : syntaxe TOML invalide : {exc}") from exc
    unknown = sorted(set(data) - _SECTIONS)
    if unknown:
        raise RuleFileError(
            f"Fichier de règles {path} : section inconnue {', '.join(unknown)} "
            "(attendu : [normalise.sms], [normalise.emoji], [opt_out], [distress], [[rule]])"
        )
    normalise = data.get("normalise", {})
    if not isinstance(normalise, dict):
        raise RuleFileError(f"Fichier de règles {path} : [normalise] doit être une table")
    sms = _word_table(path, "normalise.sms", normalise.get("sms", {}))
    emoji_words = _string_table(path, "normalise.emoji", normalise.get("emoji", {}))
    emoji = {
        _EMOJI_DECORATION.sub("", symbol): " ".join(_NON_WORD.sub(" ", fold(word)).split())
        for symbol, word in emoji_words.items()
    }
    opt_out_ignore = _opt_out_section(path, data.get("opt_out", {}))
    distress_unless, distress_hedges = _distress_section(path, data.get("distress", {}))
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list):
        raise RuleFileError(f"Fichier de règles {path} : utilisez [[rule]] pour chaque règle")
    rules = [_parse_rule(path, index, raw) for index, raw in enumerate(raw_rules, start=1)]
    ids = [rule_id for rule_id, _ in rules]
    duplicates = sorted({rule_id for rule_id in ids if ids.count(rule_id) > 1})
    if duplicates:
        raise RuleFileError(f"Fichier de règles {path} : règle « {duplicates[0]} » définie 2 fois")
    return _FileRules(path, rules, sms, emoji, opt_out_ignore, distress_unless, distress_hedges)


def _opt_out_section(path: Path, section: Any) -> tuple[re.Pattern[str], ...]:
    def fail(problem: str) -> RuleFileError:
        return RuleFileError(f"Fichier de règles {path} : [opt_out] : {problem}")

    if not isinstance(section, dict):
        raise fail("doit être une table")
    unknown = sorted(set(section) - {"ignore"})
    if unknown:
        raise fail(f"clé inconnue {', '.join(unknown)} (attendu : ignore)")
    return _compile(
        section.get("ignore", []), "ignore", lambda problem: fail(f"ignore : {problem}")
    )


def _distress_section(
    path: Path, section: Any
) -> tuple[tuple[re.Pattern[str], ...], tuple[re.Pattern[str], ...]]:
    def fail(problem: str) -> RuleFileError:
        return RuleFileError(f"Fichier de règles {path} : [distress] : {problem}")

    if not isinstance(section, dict):
        raise fail("doit être une table")
    unknown = sorted(set(section) - {"unless", "hedges"})
    if unknown:
        raise fail(f"clé inconnue {', '.join(unknown)} (attendu : unless, hedges)")
    unless = _compile(section.get("unless", []), "unless", lambda p: fail(f"unless : {p}"))
    hedges = _compile(section.get("hedges", []), "hedges", lambda p: fail(f"hedges : {p}"))
    return unless, hedges


def _string_table(path: Path, name: str, table: Any) -> dict[str, str]:
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise RuleFileError(f"Fichier de règles {path} : [{name}] doit associer des textes")
    return dict(table)


def _word_table(path: Path, name: str, table: Any) -> dict[str, str]:
    # Keys and values are normalised like the text they apply to, so "dacc" still
    # matches once the text's "cc" has been collapsed.
    words = _string_table(path, name, table)
    result = {}
    for key, value in words.items():
        norm_key = collapse_letters(_NON_WORD.sub(" ", fold(key))).strip()
        if not norm_key or " " in norm_key:
            raise RuleFileError(f"Fichier de règles {path} : [{name}] « {key} » n'est pas un mot")
        result[norm_key] = " ".join(collapse_letters(_NON_WORD.sub(" ", fold(value))).split())
    return result


def _parse_rule(path: Path, index: int, raw: Any) -> tuple[str, Rule | None]:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not raw["id"]:
        raise RuleFileError(f"Fichier de règles {path} : la règle n°{index} n'a pas d'id")
    rule_id = raw["id"]

    def fail(problem: str) -> RuleFileError:
        return RuleFileError(f"Fichier de règles {path} : règle « {rule_id} » : {problem}")

    if not _RULE_ID.match(rule_id) or len(rule_id) > MAX_RULE_ID or rule_id == DEFAULT_RULE:
        raise fail(f"id invalide (minuscules, chiffres, _ . -, {MAX_RULE_ID} caractères au plus)")
    unknown = sorted(set(raw) - _RULE_KEYS)
    if unknown:
        raise fail(f"clé inconnue {', '.join(unknown)}")
    if raw.get("enabled", True) is False:
        return rule_id, None
    label = raw.get("label")
    if label not in LABELS:
        raise fail(f"label {label!r} inconnu (attendu : {', '.join(LABELS)})")
    priority = raw.get("priority")
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise fail("priority doit être un nombre entier")
    patterns = _compile(raw.get("patterns"), "patterns", fail)
    if not patterns:
        raise fail("patterns doit contenir au moins une expression")
    unless = _compile(raw.get("unless", []), "unless", fail)
    resubscribe = raw.get("resubscribe", False)
    if not isinstance(resubscribe, bool):
        raise fail("resubscribe doit valoir true ou false")
    return rule_id, Rule(rule_id, label, priority, patterns, unless, resubscribe)


def _compile(values: Any, name: str, fail: Any) -> tuple[re.Pattern[str], ...]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise fail(f"{name} doit être une liste d'expressions régulières entre quotes")
    compiled = []
    for source in values:
        prepared = _PATTERN_LETTER_RUN.sub(r"\1", fold_pattern(source))
        try:
            compiled.append(re.compile(prepared))
        except re.error as exc:
            raise fail(f"expression {source!r} invalide : {exc}") from exc
    return tuple(compiled)


def fold_pattern(source: str) -> str:
    """Strip accents from a pattern without touching case (``\\S`` is not ``\\s``)."""
    source = source.replace("œ", "oe").replace("æ", "ae")
    decomposed = unicodedata.normalize("NFD", source)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", stripped)


def _merge(files: Iterable[_FileRules]) -> RuleSet:
    by_id: dict[str, tuple[int, Rule | None]] = {}
    sms: dict[str, str] = {}
    emoji: dict[str, str] = {}
    ignore: list[re.Pattern[str]] = []
    distress_unless: list[re.Pattern[str]] = []
    distress_hedges: list[re.Pattern[str]] = []
    order = 0
    for loaded in files:
        sms.update(loaded.sms)
        emoji.update(loaded.emoji)
        ignore.extend(loaded.opt_out_ignore)
        distress_unless.extend(loaded.distress_unless)
        distress_hedges.extend(loaded.distress_hedges)
        for rule_id, rule in loaded.rules:
            position = by_id[rule_id][0] if rule_id in by_id else order
            by_id[rule_id] = (position, rule)
            order += 1
    # One tuple each, shared by every distress rule (see Rule.masked's cache).
    shared_unless, shared_hedges = tuple(distress_unless), tuple(distress_hedges)
    kept = [
        (position, _with_distress_unless(rule, shared_unless, shared_hedges))
        for position, rule in by_id.values()
        if rule is not None
    ]
    # Highest priority first; on a tie the rule written first wins.
    kept.sort(key=lambda item: (-item[1].priority, item[0]))
    # Longest emoji sequences first so a combined emoji is not split by a shorter one.
    emoji = dict(sorted(emoji.items(), key=lambda item: -len(item[0])))
    return RuleSet(tuple(rule for _, rule in kept), sms, emoji, tuple(ignore))


def _with_distress_unless(
    rule: Rule, unless: tuple[re.Pattern[str], ...], hedges: tuple[re.Pattern[str], ...]
) -> Rule:
    # Hypotheses, information questions and events over and done with mean the same
    # thing whichever distress rule they would trip: written once, applied to each.
    if rule.label != "distress" or not (unless or hedges):
        return rule
    return replace(rule, shared_unless=unless, hedges=hedges)

"""Reply classification by the rules: the rule table, rule files.

The dev set's safety targets and the `campaigns classify` CLI, which now goes through the
decision policy, are tested in test_reply_policy.py; the [distress] section of the rule
file in test_reply_model.py (what the model reads of a negated passage).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from campaigns.rules.classification import (
    LABELS,
    Classification,
    RuleFileError,
    check_rules,
    classify,
    configured_rules,
    is_resubscribe,
    load_rules,
    normalise_reply,
)

# --- Normalisation ---------------------------------------------------------------

NORMALISE_CASES = [
    ("Je suis TOMBÉE !!!", "je suis tombe"),
    ("jsui tombee", "je suis tombe"),
    ("g pa mangé", "j ai pas mange"),
    ("jai froid", "j ai froid"),
    ("chui seule", "je suis seule"),
    ("b1 reçu mrc", "bien recu merci"),
    ("merciiiii", "merci"),
    ("Rappelez-moi stp", "rapelez moi s il te plait"),
    ("l’aide… «urgent»", "l aide urgent"),
    ("Cœur", "coeur"),
    ("❤️👍", "emo_merci emo_merci"),
    ("😢", "emo_triste"),
    ("", ""),
]


@pytest.mark.parametrize(("text", "expected"), NORMALISE_CASES)
def test_normalise_reply_folds_case_accents_punctuation_repeats_and_sms(
    text: str, expected: str
) -> None:
    assert normalise_reply(text) == expected


# --- The rule table ---------------------------------------------------------------

# (text, label, opt_out_requested)
CASES = [
    # Opt-out: clear requests only.
    ("STOP", "opt_out", True),
    ("stop", "opt_out", True),
    ("Stoooop !!", "opt_out", True),
    ("STOP SMS", "opt_out", True),
    ("stop merci", "opt_out", True),
    ("ARRET", "opt_out", True),
    ("ARRÊT", "opt_out", True),
    ("arrete svp", "opt_out", True),
    ("Arrêtez de m'envoyer des messages", "opt_out", True),
    ("arrêtez de m'appeler", "opt_out", True),
    ("je ne veux plus recevoir de sms", "opt_out", True),
    ("je ne souhaite plus être contacté", "opt_out", True),
    ("ne m'appelez plus", "opt_out", True),
    ("merci de ne plus m'envoyer de messages", "opt_out", True),
    ("Désinscription", "opt_out", True),
    ("je veux me désinscrire", "opt_out", True),
    ("plus de sms svp", "opt_out", True),
    # Not opt-out although the words are near.
    ("je n'arrête pas de tomber", "distress", False),
    ("Arrêt de bus trop loin, je ne peux pas venir", "other", False),
    ("je vais arrêter de fumer", "other", False),
    ("je tousse non stop", "distress", False),
    ("je ne veux pas recevoir de visite", "other", False),
    ("je voudrais désinscrire ma mère de l'atelier", "other", False),
    ("laissez moi tranquille", "other", False),
    # Distress outranks everything and keeps the opt-out flag.
    ("STOP je suis tombée", "distress", True),
    ("Je n'ai plus de chauffage et j'ai froid STOP", "distress", True),
    ("merci mais je suis tombée hier", "distress", False),
    # Falls.
    ("Je suis tombée et je n'arrive pas à me relever", "distress", False),
    ("jsui tombee", "distress", False),
    ("ma femme est tombée", "distress", False),
    ("j'ai fait une chute", "distress", False),
    ("jpeu pa me relevé", "distress", False),
    ("j'ai glissé dans la salle de bain", "distress", False),
    # Hunger.
    ("g pa mangé", "distress", False),
    ("jai faim", "distress", False),
    ("j'ai plus rien à manger", "distress", False),
    ("frigo vide", "distress", False),
    # Cold and heat.
    ("j'ai froid", "distress", False),
    ("plus de chauffage depuis hier", "distress", False),
    ("mon chauffage est en panne", "distress", False),
    ("il fait trop chaud chez moi", "distress", False),
    ("canicule je supporte pas", "distress", False),
    ("il fait 35 degrés dans mon appartement", "distress", False),
    # Health.
    ("je suis malade", "distress", False),
    ("chuis malad", "distress", False),
    ("j'ai mal au coeur", "distress", False),
    ("je respire mal", "distress", False),
    ("j'ai de la fièvre", "distress", False),
    ("mes médicaments sont finis", "distress", False),
    ("je n'ai plus mes médocs", "distress", False),
    ("je ne me sens pas bien", "distress", False),
    ("ça va pas du tout", "distress", False),
    ("l'infirmière n'est pas passée", "distress", False),
    ("je peux plus marcher", "distress", False),
    ("mon mari ne se réveille pas", "distress", False),
    ("ça sent le gaz", "distress", False),
    # Isolation and despair.
    ("je me sens tres seule", "distress", False),
    ("personne ne vient me voir", "distress", False),
    ("j'ai plus envie de vivre", "distress", False),
    ("je pense au suicide", "distress", False),
    ("je veux en finir", "distress", False),
    ("jen peu plus", "distress", False),
    ("j'ai des idées noires", "distress", False),
    # Danger and violence.
    ("on me frappe", "distress", False),
    ("mon fils me bat", "distress", False),
    ("j'ai peur", "distress", False),
    ("il m'a menacée", "distress", False),
    # Calls for help.
    ("au secours", "distress", False),
    ("aidé moi", "distress", False),
    ("Aidez-moi svp", "distress", False),
    ("URGENT besoin d'aide", "distress", False),
    ("SOS", "distress", False),
    ("🆘", "distress", False),
    ("pouvez-vous m'aider", "distress", False),
    ("qui peut m'aider ?", "distress", False),
    ("j'ai besoin qu'on m'aide", "distress", False),
    ("je ne sais plus quoi faire", "distress", False),
    ("je n'ai pas besoin qu'on m'aide", "thanks", False),
    # Injuries, being stuck, hospital.
    ("je me suis cassé la jambe", "distress", False),
    ("je me suis cassée le poignet hier", "distress", False),
    ("j'ai une fracture", "distress", False),
    ("je me suis fait mal", "distress", False),
    ("je tiens plus debout", "distress", False),
    ("je ne peux plus bouger", "distress", False),
    ("jpeu plu bouger", "distress", False),
    ("je suis coincée", "distress", False),
    ("je suis bloquée chez moi", "distress", False),
    ("je suis à l'hôpital", "distress", False),
    ("mon mari est à l'hôpital depuis hier", "distress", False),
    ("je ne me suis pas fait mal", "other", False),
    ("j'ai cassé mes lunettes", "other", False),
    ("je suis coincé mardi, rappelez moi", "callback", False),
    ("je ne peux pas bouger mon rendez-vous", "other", False),
    # A spouse's death: a recently bereaved person alone (a parent's, long ago: other).
    ("mon mari est mort", "distress", False),
    ("mon mari est décédé", "distress", False),
    ("ma femme est décédée la semaine dernière", "distress", False),
    ("mon mari est décédé il y a 10 ans", "other", False),
    # STOP with a distress signal: distress, and the opt-out is kept.
    ("STOP je me suis cassé la jambe", "distress", True),
    ("stop je suis à l'hôpital", "distress", True),
    ("STOP pas de nourriture", "distress", True),
    ("STOP je ne peux plus bouger", "distress", True),
    ("stop j'ai besoin qu'on m'aide", "distress", True),
    # No shelter.
    ("je suis à la rue", "distress", False),
    ("on m'a expulsé", "distress", False),
    ("je dors dehors", "distress", False),
    # Negations: not distress.
    ("je ne suis pas seule, merci", "thanks", False),
    ("je ne suis jamais seule, ma fille passe tous les jours", "other", False),
    ("je ne suis pas tombée, tout va bien", "thanks", False),
    ("pas besoin d'aide merci", "thanks", False),
    ("je ne suis pas malade", "other", False),
    ("j'ai pas faim", "other", False),
    ("c'est pas urgent merci", "thanks", False),
    ("ça va pas mal merci", "thanks", False),
    ("ça tombe bien, rappelez moi", "callback", False),
    ("j'ai mal compris le message", "other", False),
    ("Merci pour les conseils canicule", "thanks", False),
    ("je suis tombé sur votre message par hasard", "other", False),
    # Callback.
    ("Oui", "callback", False),
    ("ouiii", "callback", False),
    ("ok", "callback", False),
    ("d'accord", "callback", False),
    ("dacc", "callback", False),
    ("1", "callback", False),
    ("rappelez-moi", "callback", False),
    ("appelez moi svp", "callback", False),
    ("je veux bien", "callback", False),
    ("quand vous voulez", "callback", False),
    ("après 16h", "callback", False),
    ("plutôt le matin", "callback", False),
    ("Entre 10h et 12h", "callback", False),
    ("oui je veux bien qu'on m'appelle cet aprem", "callback", False),
    ("📞", "callback", False),
    # Not callback.
    ("pas besoin de me rappeler", "thanks", False),
    ("ne me rappelez pas je vais bien", "thanks", False),
    ("ma fille va vous appeler", "other", False),
    ("je vous rappelle", "other", False),
    # Thanks.
    ("Merci", "thanks", False),
    ("merciii", "thanks", False),
    ("b1 recu mrc", "thanks", False),
    ("ok merci", "thanks", False),
    ("ça va bien", "thanks", False),
    ("tout va bien merci", "thanks", False),
    ("pas besoin merci", "thanks", False),
    ("non merci", "thanks", False),
    ("bonne journée", "thanks", False),
    ("🙏", "thanks", False),
    ("😊", "thanks", False),
    ("❤️", "thanks", False),
    ("👍", "thanks", False),
    ("ok 👍", "thanks", False),
    # Emoji: a sad face alone is not distress; with a weak signal it is.
    ("😢", "other", False),
    ("😭😭", "other", False),
    ("😢 merci", "thanks", False),
    ("😢 je suis fatiguée", "distress", False),
    ("le moral est pas bon 😢", "distress", False),
    ("🥶😢", "distress", False),
    # Other.
    ("Qui êtes vous ?", "other", False),
    ("c'est qui", "other", False),
    ("Mauvais numéro", "other", False),
    ("Je ne suis pas Mme Durand", "other", False),
    ("Je suis à l'hôpital jusqu'à lundi, ma fille s'occupe de mes papiers", "other", False),
    ("non", "other", False),
    ("mon père est décédé l'an dernier, il ne peut pas répondre", "other", False),
    ("ma fille s'occupe de moi", "thanks", False),
    ("svp arrêtez", "opt_out", True),
    ("", "other", False),
    ("START", "other", False),
]


@pytest.mark.parametrize(("text", "label", "opt_out"), CASES)
def test_classify_table(text: str, label: str, opt_out: bool) -> None:
    result = classify(text)
    assert (result.label, result.opt_out_requested) == (label, opt_out), result


def test_classification_names_the_deciding_rule_and_every_match() -> None:
    result = classify("STOP je suis tombée")
    assert isinstance(result, Classification)
    assert result.rule == "distress_fall"
    assert result.matched[0] == "distress_fall"
    assert "opt_out_stop" in result.matched
    assert classify("rien à voir") == Classification("other", "default", False, ())


# (text, opt_out_only): an opt-out alone reaches no queue; one that says more is read.
OPT_OUT_ONLY_CASES = [
    ("STOP", True),
    ("Stoooop !!", True),
    ("STOP SMS", True),
    ("stop merci", True),
    ("Stop svp", True),
    ("ARRET", True),
    ("ARRÊT", True),
    ("arrete svp", True),
    ("Arrêtez de m'envoyer des messages", True),
    ("Désinscription", True),
    ("je veux me désinscrire", True),
    ("je ne veux plus recevoir de sms", True),
    ("merci de ne plus m'envoyer de messages", True),
    ("plus de sms svp", True),
    ("ne m'appelez plus", True),
    ("STOP 36180", True),
    ("stop 👍", True),
    ("Bonjour, STOP merci beaucoup, bonne journée", True),
    ("STOP je ne comprends rien à vos papiers", False),
    ("STOP rappelez-moi", False),
    ("STOP mon chien est mort", False),
    ("stop j'ai plus rien", False),
    ("START STOP", False),
]


@pytest.mark.parametrize(("text", "only"), OPT_OUT_ONLY_CASES)
def test_opt_out_only_is_nothing_but_the_request_and_politeness(text: str, only: bool) -> None:
    result = classify(text)
    assert (result.label, result.opt_out_requested, result.opt_out_only) == ("opt_out", True, only)


def test_only_an_opt_out_label_can_be_opt_out_only() -> None:
    assert not classify("STOP je suis tombée").opt_out_only
    assert not classify("merci").opt_out_only


RESUBSCRIBE_CASES = [
    ("START", True),
    ("start svp", True),
    ("je veux de nouveau recevoir vos sms", True),
    ("je voudrais me réabonner", True),
    ("réabonnement", True),
    ("START STOP", False),
    ("je ne veux pas de nouveau recevoir vos sms", False),
    ("stop", False),
    ("merci", False),
]


@pytest.mark.parametrize(("text", "expected"), RESUBSCRIBE_CASES)
def test_is_resubscribe(text: str, expected: bool) -> None:
    assert is_resubscribe(text) is expected


# --- Rule files ---------------------------------------------------------------------

EXTRA_RULES = """
[normalise.sms]
bsoin = "besoin"

[[rule]]
id = "ccas_colis"
label = "callback"
priority = 72
patterns = ['\\bcolis de noël\\b']

[[rule]]
id = "thanks"
enabled = false
"""


def test_the_configured_rule_file_is_added_to_the_defaults(tmp_path: Path) -> None:
    extra = tmp_path / "ccas.toml"
    extra.write_text(EXTRA_RULES, encoding="utf-8")
    rules = configured_rules(extra)

    result = classify("Est ce que le colis de Noël est maintenu", rules)
    assert (result.label, result.rule) == ("callback", "ccas_colis")
    # The extra SMS spelling is used, and the default rules still apply.
    assert classify("bsoin d'aide", rules).label == "distress"
    # A rule switched off by id no longer decides.
    assert classify("merci", rules).rule != "thanks"
    assert classify("merci").rule == "thanks"


def test_explicit_rule_file_is_added_or_used_alone(tmp_path: Path) -> None:
    extra = tmp_path / "ccas.toml"
    extra.write_text(EXTRA_RULES, encoding="utf-8")

    added = load_rules(extra)
    assert classify("colis de noël ?", added).rule == "ccas_colis"
    assert classify("je suis tombée", added).label == "distress"

    alone = load_rules(extra, replace=True)
    assert [rule.id for rule in alone.rules] == ["ccas_colis"]
    assert classify("je suis tombée", alone).label == "other"


def test_a_rule_override_keeps_one_rule_per_id(tmp_path: Path) -> None:
    extra = tmp_path / "override.toml"
    extra.write_text(
        '[[rule]]\nid = "callback_ok"\nlabel = "thanks"\npriority = 30\npatterns = [\'^ok$\']\n',
        encoding="utf-8",
    )
    rules = load_rules(extra)
    assert [rule.id for rule in rules.rules].count("callback_ok") == 1
    assert classify("ok", rules).label == "thanks"


MALFORMED = [
    ("[[rule]]\nid = 'bad_label'\nlabel = 'spam'\npriority = 1\npatterns = ['x']\n", "bad_label"),
    (
        "[[rule]]\nid = 'bad_regex'\nlabel = 'other'\npriority = 1\npatterns = ['(oui']\n",
        "bad_regex",
    ),
    ("[[rule]]\nid = 'no_patterns'\nlabel = 'other'\npriority = 1\npatterns = []\n", "no_patterns"),
    (
        "[[rule]]\nid = 'str_patterns'\nlabel = 'other'\npriority = 1\npatterns = 'x'\n",
        "str_patterns",
    ),
    ("[[rule]]\nid = 'no_priority'\nlabel = 'other'\npatterns = ['x']\n", "no_priority"),
    ("[[rule]]\nid = 'typo'\nlabel = 'other'\npriority = 1\npattern = ['x']\n", "typo"),
    (
        "[[rule]]\nid = 'bad_unless'\nlabel = 'other'\npriority = 1\npatterns = ['x']\n"
        "unless = ['[']\n",
        "bad_unless",
    ),
    ("[[rule]]\nlabel = 'other'\npriority = 1\npatterns = ['x']\n", "n°1"),
    ("[[rule]]\nid = 'twice'\nlabel = 'other'\npriority = 1\npatterns = ['x']\n" * 2, "twice"),
    ("[[rule]\nid = 'broken'\n", "TOML"),
    ("[[rules]]\nid = 'plural'\nlabel = 'other'\npriority = 1\npatterns = ['x']\n", "rules"),
    ("[[rule]]\nid = 'default'\nlabel = 'other'\npriority = 1\npatterns = ['x']\n", "default"),
    ("[opt_out]\nignore = 'merci'\n", "ignore"),
    ("[opt_out]\nignore = ['(merci']\n", "ignore"),
    ("[opt_out]\nignorer = ['merci']\n", "ignorer"),
    ("[distress]\nunless = '(pas|plus) tomb'\n", "unless"),
    ("[distress]\nhedges = ['(un peu']\n", "hedges"),
    ("[distress]\nsauf = ['x']\n", "sauf"),
]


@pytest.mark.parametrize(("content", "named"), MALFORMED)
def test_malformed_rule_file_gives_a_clear_error(tmp_path: Path, content: str, named: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(content, encoding="utf-8")
    with pytest.raises(RuleFileError) as caught:
        load_rules(bad)
    assert named in str(caught.value)
    assert str(bad) in str(caught.value)


def test_a_malformed_configured_file_fails_when_rules_load(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(MALFORMED[0][0], encoding="utf-8")
    with pytest.raises(RuleFileError, match="bad_label"):
        configured_rules(bad)


def test_check_rules_loads_the_configured_file_now(tmp_path: Path) -> None:
    """Start-up check: a bad CAMPAIGNS_REPLY_RULES raises at once, naming file and rule."""
    check_rules(None)  # the shipped rules alone
    good = tmp_path / "good.toml"
    good.write_text(EXTRA_RULES, encoding="utf-8")
    check_rules(good)
    bad = tmp_path / "bad.toml"
    bad.write_text(MALFORMED[1][0], encoding="utf-8")
    with pytest.raises(RuleFileError, match="bad_regex") as caught:
        check_rules(bad)
    assert str(bad) in str(caught.value)
    with pytest.raises(RuleFileError, match=r"absent\.toml"):
        check_rules(tmp_path / "absent.toml")


async def test_a_bad_rule_file_stops_the_runtime_from_starting(tmp_path: Path) -> None:
    """serve and worker build their runtime first: a typo stops them with a French message
    naming the variable, instead of every reply job failing behind 204 answers."""
    from campaigns.core.settings import Settings, SettingsError
    from workers.runtime import build_runtime

    bad = tmp_path / "bad.toml"
    bad.write_text(MALFORMED[0][0], encoding="utf-8")
    settings = Settings(
        CAMPAIGNS_DATABASE_URL="sqlite://:memory:",
        CAMPAIGNS_OUTBOX_DIR=str(tmp_path / "outbox"),
        CAMPAIGNS_REPLY_RULES=str(bad),
        _env_file=None,  # type: ignore[call-arg]
    )
    with pytest.raises(SettingsError) as caught:
        await build_runtime(settings)
    assert "CAMPAIGNS_REPLY_RULES" in str(caught.value) and "bad_label" in str(caught.value)


def test_shipped_rules_load_and_every_label_has_a_rule() -> None:
    rules = load_rules()
    assert {rule.label for rule in rules.rules} == set(LABELS)
    priorities = [rule.priority for rule in rules.rules]
    assert priorities == sorted(priorities, reverse=True)
    # Distress must outrank every other label for the safety targets to hold.
    lowest_distress = min(rule.priority for rule in rules.rules if rule.label == "distress")
    assert all(rule.priority < lowest_distress for rule in rules.rules if rule.label != "distress")

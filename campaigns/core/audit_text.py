"""The audit trail as sentences an administrator reads: "Sophie Martin a consulté la fiche de
Paulette Andre", never `person.view` or "Objet: person 2".

The trail stores codes (actions, object types, detail keys) so that it stays stable and
holds no personal data; names are looked up when the journal is shown, from the records
that still exist (an erased person reads "une personne effacée").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from campaigns.models import Audience, AuditEvent, Campaign, Escalation, Person, Staff, Template
from campaigns.rules.queues import OUTCOMES, QUEUE_LABELS

__all__ = [
    "ACTION_LABELS",
    "OBJECT_LABELS",
    "SEGMENT_LABELS",
    "JournalLine",
    "Names",
    "action_label",
    "journal_lines",
    "lookup_names",
    "object_label",
    "proper_name",
    "sentence",
]

# What the journal's "Action" filter offers, as a noun phrase.
ACTION_LABELS: dict[str, str] = {
    "auth.login": "Connexion",
    "auth.token": "Jeton d'accès à l'API",
    "auth.logout": "Déconnexion",
    "auth.sessions_ended": "Fin des sessions d'un compte",
    "auth.token_revoke": "Révocation d'un jeton d'accès",
    "person.view": "Consultation d'une fiche",
    "person.update": "Modification d'une fiche",
    "person.delete": "Effacement d'une personne",
    "person.export": "Export des données d'une personne",
    "people.search": "Liste des personnes",
    "register.import": "Import d'un registre",
    "registry.demo": "Population de démonstration",
    "audience.create": "Création d'un public",
    "template.create": "Création d'un modèle",
    "template.update": "Modification d'un modèle",
    "template.seed": "Modèles fournis",
    "campaign.create": "Création d'une campagne",
    "campaign.schedule": "Programmation d'une campagne",
    "campaign.launch": "Lancement d'une campagne",
    "campaign.run": "Nouvel envoi d'une campagne",
    "campaign.pause": "Mise en pause d'une campagne",
    "campaign.resume": "Reprise d'une campagne",
    "campaign.cancel": "Annulation d'une campagne",
    "campaign.test_send": "Envoi d'essai",
    "campaign.messages": "Consultation des messages d'une campagne",
    "campaign.export": "Export des messages d'une campagne",
    "campaign.unconfirmed_resend": "Renvoi de messages non confirmés",
    "campaign.unconfirmed_close": "Clôture de messages non confirmés",
    "campaign.callers": "Appelant·es d'une campagne",
    "campaign.coverage": "Consultation de la couverture d'une campagne d'appels",
    "journey.call_step": "Étape d'appel d'un parcours",
    "call.view": "Consultation d'une fiche d'appel",
    "call.list": "Consultation de ses appels",
    "call.claim": "Prise d'un appel",
    "call.release": "Appel reposé",
    "call.outcome": "Issue d'un appel",
    "call.callback": "Rappel demandé par SMS",
    "optout.calls": "Opposition aux appels",
    "optout.create": "Opposition enregistrée",
    "optout.lift": "Opposition levée",
    "optout.confirmation": "Confirmation de désinscription",
    "escalation.create": "Ouverture d'une situation",
    "escalation.join": "Réponse ajoutée à une situation",
    "escalation.reopen": "Réouverture d'une situation",
    "escalation.renew": "Réponse urgente dans une situation en retard",
    "escalation.view": "Consultation d'une situation",
    "escalation.claim": "Prise en charge d'une situation",
    "escalation.note": "Note sur une situation",
    "escalation.snooze": "Report d'une situation",
    "escalation.resolve": "Clôture d'une situation",
    "escalation.overdue": "Situation en retard",
    "reply.list": "Consultation des réponses",
    "reply.read": "Réponses marquées lues",
    "reply.relabel": "Correction du classement d'une réponse",
    "staff.create": "Création d'un compte",
    "staff.password": "Changement de mot de passe",
    "staff.queues": "Files d'un compte",
    "staff.role": "Changement de rôle",
    "staff.activate": "Réactivation d'un compte",
    "staff.deactivate": "Désactivation d'un compte",
}

OBJECT_LABELS: dict[str, str] = {
    "person": "Personne",
    "campaign": "Campagne",
    "template": "Modèle",
    "audience": "Public",
    "escalation": "Situation",
    "staff": "Compte",
    "reply": "Réponse",
    "opt_out": "Opposition",
    "call_task": "Appel",
    "segment": "Segment",
}

# The segments' French names, for the journal's sentences and the staff pages alike.
SEGMENT_LABELS = {
    "domicilies": "Domiciliés",
    "aides_facultatives": "Aides facultatives",
    "animations": "Animations",
    "registre_fragiles": "Registre des personnes fragiles",
}
_ROLES = {"admin": "administrateur", "coordinator": "coordinateur",
          "caseworker": "travailleur social", "benevole": "bénévole"}  # fmt: skip
_CHANNELS = {"sms": "SMS", "email": "e-mail", "appel": "appels"}
_CALL_OUTCOMES = {
    "joint_rien": "joint·e, rien à signaler", "joint_besoin": "joint·e, besoin",
    "pas_de_reponse": "pas de réponse", "messagerie": "messagerie",
    "faux_numero": "faux numéro", "refus_appels": "ne souhaite plus être appelé·e",
}  # fmt: skip
_REPLY_LABELS = {"opt_out": "désinscription", "callback": "demande de rappel",
                 "distress": "détresse", "thanks": "remerciement", "other": "autre"}  # fmt: skip
_FIELDS = {
    "civility": "civilité", "first_name": "prénom", "last_name": "nom", "birth_date":
    "date de naissance", "mobile": "portable", "landline": "téléphone fixe", "email":
    "courriel", "district": "quartier", "referent_email": "référent", "preferred_channel":
    "canal préféré", "external_ref": "n° de dossier", "address": "adresse",
}  # fmt: skip
_CRITERIA = {
    "segments_any": "au moins un de ces segments", "segments_all": "tous ces segments",
    "segments_none": "aucun de ces segments", "districts": "quartiers", "age_min": "âge minimum",
    "age_max": "âge maximum", "channel": "joignable par", "not_contacted_days":
    "pas contacté depuis",
}  # fmt: skip
_VIA = {
    "escalation": "depuis une situation",
    "launch_preview": "dans l'aperçu d'un lancement de campagne",
    "api": "par l'API",
    "page": "par les pages",
    "simulation": "après une réponse simulée (mode console)",
    "preview": "dans l'aperçu d'un modèle",
    "next": "en prenant la suivante de la file",
}
_PAGES = {"modifier": "pour la modifier", "effacer": "avant effacement"}
_END_REASONS = {
    "logout": "à la déconnexion",
    "role": "après un changement de rôle",
    "password": "après un changement de mot de passe",
    "deactivation": "à la désactivation du compte",
}
_SYSTEM_ACTORS = {"système": "Le service", "ligne de commande": "La ligne de commande"}


def proper_name(text: str | None) -> str:
    """A register's "ANDRE" as people write it, "Andre"; mixed case is left as typed."""
    text = " ".join((text or "").split())
    return text.title() if text.isupper() or text.islower() else text


def action_label(action: str) -> str:
    return ACTION_LABELS.get(action, "Autre action")


def object_label(object_type: str) -> str:
    return OBJECT_LABELS.get(object_type, "Autre")


@dataclass
class Names:
    """Names of the records the events point at, by id (what still exists)."""

    staff: dict[int, str] = field(default_factory=dict)
    people: dict[int, str] = field(default_factory=dict)
    campaigns: dict[int, str] = field(default_factory=dict)
    templates: dict[int, str] = field(default_factory=dict)
    audiences: dict[int, str] = field(default_factory=dict)
    escalation_people: dict[int, int | None] = field(default_factory=dict)

    def person(self, person_id: Any) -> str:
        number = _int(person_id)
        if number is None:
            return "une personne"
        return self.people.get(number) or "une personne effacée"

    def staff_member(self, staff_id: Any) -> str:
        number = _int(staff_id)
        return self.staff.get(number, "un compte supprimé") if number is not None else "un compte"


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _ids(events: Iterable[AuditEvent], *types: str) -> set[int]:
    return {
        number
        for e in events
        if e.object_type in types and (number := _int(e.object_id)) is not None
    }


async def lookup_names(events: list[AuditEvent]) -> Names:
    """One query per kind of record named by the page of events."""
    names = Names()
    escalations = _ids(events, "escalation")
    if escalations:
        names.escalation_people = dict(
            await Escalation.filter(id__in=escalations).values_list("id", "person_id")
        )
    people = _ids(events, "person") | {p for p in names.escalation_people.values() if p}
    for e in events:
        if (number := _int(e.detail.get("person_id"))) is not None:
            people.add(number)
    if people:
        rows = await Person.filter(id__in=people).values_list("id", "first_name", "last_name")
        names.people = {
            pid: " ".join(filter(None, (proper_name(first), proper_name(last)))) or f"n° {pid}"
            for pid, first, last in rows
        }
    staff = _ids(events, "staff") | {e.actor_id for e in events if e.actor_id is not None}
    if staff:
        rows = await Staff.filter(id__in=staff).values_list("id", "name", "email")
        names.staff = {sid: (name or "").strip() or email for sid, name, email in rows}
    campaigns = _ids(events, "campaign") | {
        n for e in events if (n := _int(e.detail.get("campaign_id"))) is not None
    }
    if campaigns:
        names.campaigns = dict(await Campaign.filter(id__in=campaigns).values_list("id", "name"))
    if templates := _ids(events, "template"):
        names.templates = dict(await Template.filter(id__in=templates).values_list("id", "name"))
    if audiences := _ids(events, "audience"):
        names.audiences = dict(await Audience.filter(id__in=audiences).values_list("id", "name"))
    return names


def actor_name(event: AuditEvent, names: Names) -> str:
    if event.actor_id is not None and event.actor_id in names.staff:
        return names.staff[event.actor_id]
    return _SYSTEM_ACTORS.get(event.actor_label, event.actor_label or "Quelqu'un")


def _quoted(name: str | None, fallback: str) -> str:
    return f"« {name} »" if name else fallback


def _campaign(event: AuditEvent, names: Names) -> str:
    name = names.campaigns.get(_int(event.object_id) or -1)
    return "la campagne " + _quoted(name, "supprimée")


def _escalation(event: AuditEvent, names: Names) -> str:
    number = _int(event.object_id)
    person = names.escalation_people.get(number) if number is not None else None
    if person is None:
        return "une situation"
    return f"la situation de {names.person(person)}"


def _count(n: Any, one: str, many: str) -> str:
    value = _int(n) or 0
    return f"{value} {one if value <= 1 else many}"


Phrase = Callable[[AuditEvent, Names], str]
_SENTENCES: dict[str, Phrase] = {
    "auth.login": lambda e, n: "a ouvert une session",
    "auth.token": lambda e, n: "a obtenu un jeton d'accès à l'API",
    "auth.logout": lambda e, n: "a fermé sa session",
    "auth.sessions_ended": lambda e, n: (
        "a mis fin aux sessions ouvertes de " + n.staff_member(e.object_id)
    ),
    "auth.token_revoke": lambda e, n: (
        "a révoqué un jeton d'accès à l'API de " + n.staff_member(e.object_id)
    ),
    "person.view": lambda e, n: f"a consulté la fiche de {n.person(e.object_id)}",
    "person.update": lambda e, n: f"a modifié la fiche de {n.person(e.object_id)}",
    "person.delete": lambda e, n: "a effacé les données d'une personne",
    "person.export": lambda e, n: f"a exporté les données de {n.person(e.object_id)}",
    "people.search": lambda e, n: "a consulté la liste des personnes",
    "register.import": lambda e, n: (
        "a importé un registre dans le segment "
        + _quoted(SEGMENT_LABELS.get(e.object_id or "", e.object_id), "inconnu")
    ),
    "registry.demo": lambda e, n: "a créé une population de démonstration",
    "audience.create": lambda e, n: (
        "a créé le public " + _quoted(n.audiences.get(_int(e.object_id) or -1), "(supprimé)")
    ),
    "template.create": lambda e, n: (
        "a créé le modèle " + _quoted(n.templates.get(_int(e.object_id) or -1), "(supprimé)")
    ),
    "template.update": lambda e, n: (
        "a modifié le modèle " + _quoted(n.templates.get(_int(e.object_id) or -1), "(supprimé)")
    ),
    "template.seed": lambda e, n: (
        "a ajouté "
        + _count(e.detail.get("count"), "modèle fourni", "modèles fournis")
        + " avec le logiciel"
    ),
    "campaign.create": lambda e, n: f"a créé {_campaign(e, n)}",
    "campaign.schedule": lambda e, n: f"a programmé {_campaign(e, n)}",
    "campaign.launch": lambda e, n: f"a lancé {_campaign(e, n)}",
    "campaign.run": lambda e, n: f"a démarré un nouvel envoi de {_campaign(e, n)}",
    "campaign.pause": lambda e, n: f"a mis en pause {_campaign(e, n)}",
    "campaign.resume": lambda e, n: f"a repris {_campaign(e, n)}",
    "campaign.cancel": lambda e, n: f"a annulé {_campaign(e, n)}",
    "campaign.test_send": lambda e, n: f"a envoyé un message d'essai de {_campaign(e, n)}",
    "campaign.messages": lambda e, n: f"a consulté les messages de {_campaign(e, n)}",
    "campaign.export": lambda e, n: f"a exporté les messages de {_campaign(e, n)}",
    "campaign.unconfirmed_resend": lambda e, n: (
        "a renvoyé "
        + _count(e.detail.get("messages"), "message non confirmé", "messages non confirmés")
        + f" de {_campaign(e, n)}"
    ),
    "campaign.unconfirmed_close": lambda e, n: (
        "a clos "
        + _count(e.detail.get("messages"), "message non confirmé", "messages non confirmés")
        + f" de {_campaign(e, n)}"
    ),
    "campaign.callers": lambda e, n: f"a nommé les appelant·es de {_campaign(e, n)}",
    "campaign.coverage": lambda e, n: f"a consulté la couverture de {_campaign(e, n)}",
    "journey.call_step": lambda e, n: f"a ouvert l'étape d'appel {_campaign(e, n)}",
    "call.view": lambda e, n: "a consulté une fiche d'appel",
    "call.list": lambda e, n: (
        "a consulté sa liste d'appels ("
        + _count(e.detail.get("shown"), "personne nommée", "personnes nommées")
        + ")"
    ),
    "call.claim": lambda e, n: "a pris un appel",
    "call.release": lambda e, n: "a reposé un appel",
    "call.outcome": lambda e, n: (
        "a noté l'issue d'un appel : "
        + _CALL_OUTCOMES.get(str(e.detail.get("outcome")), "issue inconnue")
    ),
    "call.callback": lambda e, n: "a programmé un rappel demandé par SMS",
    "optout.calls": lambda e, n: "a enregistré une opposition aux appels",
    "optout.create": lambda e, n: "a enregistré une opposition (STOP)",
    "optout.lift": lambda e, n: "a levé une opposition",
    "optout.confirmation": lambda e, n: "a envoyé la confirmation d'une désinscription",
    "escalation.create": lambda e, n: f"a ouvert {_escalation(e, n)}",
    "escalation.join": lambda e, n: f"a ajouté une réponse à {_escalation(e, n)}",
    "escalation.reopen": lambda e, n: f"a rouvert {_escalation(e, n)}",
    "escalation.renew": lambda e, n: f"a signalé une réponse urgente dans {_escalation(e, n)}",
    "escalation.view": lambda e, n: f"a consulté {_escalation(e, n)}",
    "escalation.claim": lambda e, n: f"a pris en charge {_escalation(e, n)}",
    "escalation.note": lambda e, n: f"a ajouté une note à {_escalation(e, n)}",
    "escalation.snooze": lambda e, n: f"a reporté {_escalation(e, n)}",
    "escalation.resolve": lambda e, n: f"a clôturé {_escalation(e, n)}",
    "escalation.overdue": lambda e, n: f"a signalé en retard {_escalation(e, n)}",
    "reply.list": lambda e, n: "a consulté les réponses reçues",
    "reply.read": lambda e, n: (
        "a marqué " + _count(e.detail.get("count"), "réponse comme lue", "réponses comme lues")
    ),
    "reply.relabel": lambda e, n: "a corrigé le classement d'une réponse",
    "staff.create": lambda e, n: f"a créé le compte de {n.staff_member(e.object_id)}",
    "staff.password": lambda e, n: (
        "a changé son mot de passe"
        if _int(e.object_id) == e.actor_id
        else f"a changé le mot de passe de {n.staff_member(e.object_id)}"
    ),
    "staff.queues": lambda e, n: f"a modifié les files de {n.staff_member(e.object_id)}",
    "staff.role": lambda e, n: f"a changé le rôle de {n.staff_member(e.object_id)}",
    "staff.activate": lambda e, n: f"a réactivé le compte de {n.staff_member(e.object_id)}",
    "staff.deactivate": lambda e, n: f"a désactivé le compte de {n.staff_member(e.object_id)}",
}


def sentence(event: AuditEvent, names: Names) -> str:
    """ "Sophie Martin a consulté la fiche de Paulette Andre."""
    phrase = _SENTENCES.get(event.action)
    if phrase is not None:
        what = phrase(event, names)
    else:
        # An action this module does not know yet still reads as French, without its code.
        what = f"a effectué une action ({object_label(event.object_type).lower()})"
    # Not capitalised: an actor shown by e-mail address keeps it as typed.
    return f"{actor_name(event, names)} {what}."


def _labels(values: Any, table: Mapping[str, str]) -> str:
    """Codes as their labels; anything unknown or not a plain code is left out, not dumped."""
    items = list(values) if isinstance(values, list | tuple | dict) else [values]
    return ", ".join(table[v] for v in items if isinstance(v, str) and v in table)


def details(event: AuditEvent, names: Names) -> list[str]:
    """The detail of an event as short French phrases; codes without a phrase are left out."""
    return _context_details(event, names) + _result_details(event)


def _context_details(event: AuditEvent, names: Names) -> list[str]:
    d: Mapping[str, Any] = event.detail or {}
    out: list[str] = []
    if via := d.get("via"):
        out.append(_VIA.get(str(via), "par un autre écran"))
    if page := d.get("page"):
        out.append(_PAGES.get(str(page), "depuis une autre page"))
    if (campaign := _int(d.get("campaign_id"))) is not None and event.object_type != "campaign":
        out.append("campagne " + _quoted(names.campaigns.get(campaign), "supprimée"))
    if fields := _labels(d.get("fields"), _FIELDS):
        out.append("champs modifiés : " + fields)
    if role := d.get("role"):
        out.append("rôle : " + _ROLES.get(str(role), str(role)))
    if "queues" in d:
        out.append("files : " + (_labels(d["queues"], QUEUE_LABELS) or "toutes"))
    elif queue := d.get("queue"):
        out.append("file : " + QUEUE_LABELS.get(str(queue), str(queue)))
    if keys := _labels(d.get("keys"), _CRITERIA):
        out.append("critères : " + keys)
    if (count := d.get("count")) is not None and event.action == "audience.create":
        out.append(_count(count, "personne", "personnes"))
    if channel := d.get("channel"):
        out.append(_CHANNELS.get(str(channel), "autre canal"))
    if segment := d.get("segment"):
        out.append("segment " + _quoted(SEGMENT_LABELS.get(str(segment), str(segment)), ""))
    return out


def _result_details(event: AuditEvent) -> list[str]:
    d: Mapping[str, Any] = event.detail or {}
    out: list[str] = []
    if d.get("text_search"):
        out.append("recherche par texte")
    if (shown := d.get("shown")) is not None:
        out.append(f"{shown} affichée(s) sur {d.get('total', shown)}")
    if (rows := d.get("rows")) is not None:
        out.append(
            f"{rows} ligne(s) : {d.get('created', 0)} créée(s), {d.get('updated', 0)} mise(s) "
            f"à jour, {d.get('rejected', 0)} rejetée(s)"
        )
    if (people := d.get("people")) is not None:
        out.append(_count(people, "personne", "personnes"))
    if (version := d.get("version")) is not None:
        out.append(f"version {version}")
    if (cancelled := d.get("cancelled")) is not None:
        out.append(_count(cancelled, "message annulé", "messages annulés"))
    if outcome := d.get("outcome"):
        out.append("issue : " + OUTCOMES.get(str(outcome), "autre"))
    if "label" in d and event.action == "reply.relabel":
        new, old = d.get("label"), d.get("previous")
        out.append(
            f"« {_REPLY_LABELS.get(str(new), str(new))} » au lieu de "
            f"« {_REPLY_LABELS.get(str(old), str(old) if old else 'aucun')} »"
        )
    if event.action == "auth.sessions_ended" and (reason := d.get("reason")):
        out.append(_END_REASONS.get(str(reason), "pour une autre raison"))
    if (recurrence := d.get("recurrence_days")) is not None:
        out.append(f"tous les {recurrence} jours")
    return out


@dataclass(frozen=True)
class JournalLine:
    """One event as the journal shows it."""

    id: int
    at: datetime
    actor: str
    sentence: str
    details: list[str]
    action: str
    action_label: str


async def journal_lines(events: list[AuditEvent]) -> list[JournalLine]:
    names = await lookup_names(events)
    return [
        JournalLine(
            id=e.id,
            at=e.at,
            actor=actor_name(e, names),
            sentence=sentence(e, names),
            details=details(e, names),
            action=e.action,
            action_label=action_label(e.action),
        )
        for e in events
    ]

"""Vonage's error codes in French, for the staff pages: SMS API refusals and receipt err-codes.

`describe_failure` reads the reason codes our client writes ("vonage:7 Number Barred",
"vonage:http-503", "vonage:partial 1/2 9 ..."); `receipt_error_text` the `err-code` of a
delivery receipt. The domain never sees these tables: it stores the texts they give.
"""

from __future__ import annotations

import re

__all__ = ["RECEIPT_ERRORS", "describe_failure", "receipt_error_text"]

# SMS API `status` values of a refused request.
_STATUS = {
    "1": "débit dépassé chez Vonage",
    "2": "paramètres manquants",
    "3": "numéro invalide",
    "4": "identifiants Vonage refusés",
    "5": "erreur interne de Vonage",
    "6": "message refusé",
    "7": "numéro bloqué",
    "8": "compte Vonage bloqué",
    "9": "quota Vonage dépassé",
    "12": "message trop long",
    "14": "signature refusée",
    "15": "expéditeur refusé",
    "29": "destination non autorisée",
    "33": "numéro désactivé",
}
# What went wrong before Vonage could answer with a status (see client.py).
_OTHER = {
    "read-timeout": "pas de réponse de Vonage",
    "connection-lost": "connexion perdue pendant l'envoi",
    "unreadable-response": "réponse de Vonage illisible",
    "unexpected-error": "erreur inattendue pendant l'envoi",
    "connect-timeout": "Vonage injoignable",
    "connect-failed": "Vonage injoignable",
    "tls": "connexion sécurisée à Vonage impossible",
    "bad-host": "adresse de l'API Vonage invalide",
    "invalid-request": "numéro ou texte invalide",
}
_HTTP = {"401": "identifiants Vonage refusés", "403": "accès refusé par Vonage"}
_PARTIAL = re.compile(r"partial (\d+)/(\d+) (\S+)")

# Vonage DLR `err-code` values.
RECEIPT_ERRORS: dict[str, str] = {
    "0": "Remis",
    "1": "Erreur inconnue",
    "2": "Abonné absent (temporaire)",
    "3": "Abonné absent (permanent)",
    "4": "Réception bloquée par l'abonné",
    "5": "Erreur de portabilité du numéro",
    "6": "Rejeté par le filtre anti-spam",
    "7": "Téléphone occupé",
    "8": "Erreur réseau",
    "9": "Numéro invalide",
    "10": "Message invalide",
    "11": "Destination non routable",
    "12": "Destinataire injoignable",
    "13": "Restriction d'âge de l'abonné",
    "14": "Numéro bloqué par l'opérateur",
    "15": "Crédit prépayé insuffisant",
    "99": "Erreur générale",
}


def describe_failure(reason: str | None) -> str | None:
    """A short French description of our client's reason code; None if it is not Vonage's."""
    if not reason:
        return None
    provider, _, rest = reason.partition(":")
    if provider != "vonage":
        return None
    word = rest.split(" ", 1)[0]
    partial = _PARTIAL.match(rest)
    if partial:
        sent, total, code = partial.groups()
        why = _STATUS.get(code, f"erreur {code}")
        return f"envoi partiel ({sent}/{total} parties) : {why}"
    if word in _STATUS:
        return _STATUS[word]
    if word.startswith("http-"):
        code = word.removeprefix("http-")
        if code in _HTTP:
            return _HTTP[code]
        return "trop de requêtes chez Vonage" if code == "429" else "Vonage indisponible"
    return _OTHER.get(word, "erreur Vonage")


def receipt_error_text(err_code: str) -> str:
    """French text for a DLR err-code, with a fallback naming the code."""
    code = err_code.strip()
    if not code:
        return "Code d'erreur absent"
    return RECEIPT_ERRORS.get(code, f"Erreur inconnue (code {code})")

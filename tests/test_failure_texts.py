"""Failure reasons read in French: each provider describes its own codes, dispatch stores that."""

from __future__ import annotations

import pytest

from campaigns.dispatch.recording import failure_text
from providers import smtp
from providers.base import Outcome, SendResult
from providers.vonage import errors as vonage_errors

FAILURE_TEXTS = [
    ("vonage:7 Number Barred", "numéro bloqué"),
    (
        "vonage:partial 1/2 9 Partner Quota Violation",
        "envoi partiel (1/2 parties) : quota Vonage dépassé",
    ),
    ("vonage:http-401", "identifiants Vonage refusés"),
    ("vonage:http-503", "Vonage indisponible"),
    ("vonage:read-timeout", "pas de réponse de Vonage"),
    ("smtp:550 mailbox unavailable", "adresse refusée par le serveur de messagerie"),
    ("smtp:451 try later", "serveur de messagerie temporairement indisponible"),
    (None, "erreur du fournisseur"),
]


def described(reason: str | None) -> SendResult:
    """The result a provider hands back: its reason code and its own French description."""
    description = vonage_errors.describe_failure(reason) or smtp.describe_failure(reason)
    return SendResult(Outcome.FAILED, parts=0, reason=reason, description=description)


@pytest.mark.parametrize(("reason", "text"), FAILURE_TEXTS)
def test_failure_reasons_read_in_french(reason: str | None, text: str) -> None:
    assert failure_text(described(reason)) == text

"""Domain errors: a stable code and a French detail each, mapped to HTTP by the web layer."""

from __future__ import annotations

from pydantic import ValidationError


class DomainError(Exception):
    status = 400
    code = "invalid"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code


class Invalid(DomainError):
    status = 422
    code = "invalid"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class Unauthorised(DomainError):
    status = 401
    code = "unauthorised"


class TooManyAttempts(DomainError):
    status = 429
    code = "too_many_attempts"


def problems_of(exc: ValidationError, root: str) -> str:
    """A model's validation errors field by field (`age_min: ...; clé: clé inconnue`)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or root}: "
        + ("clé inconnue" if err["type"] == "extra_forbidden" else err["msg"])
        for err in exc.errors()
    )

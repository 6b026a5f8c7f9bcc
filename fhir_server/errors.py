"""FHIR errors: every failure leaves the server as an OperationOutcome with the right HTTP status.

Messages may be plain English strings or `fhir_server.i18n.Msg` objects (`msg("{ref} not found",
ref=...)`); the latter are rendered in English in `outcome` and translated when the response is built,
following the request's Accept-Language (`localized`). See docs/i18n.md.
"""

from __future__ import annotations

from fhir_server.i18n import SOURCE, Localized


def operation_outcome(
    severity: str,
    code: str,
    diagnostics: str,
    expression: list[str] | str | None = None,
) -> dict:
    """Build an OperationOutcome with one issue."""
    issue: dict = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = [expression] if isinstance(expression, str) else list(expression)
    return {"resourceType": "OperationOutcome", "issue": [issue]}


class FhirError(Exception):
    """An error with an HTTP status and the OperationOutcome that explains it."""

    def __init__(
        self, status: int, outcome: dict, headers: dict | None = None, message: Localized | None = None
    ):
        self.status = status
        self.outcome = outcome
        self.headers = headers or {}
        self.message = message  # the first issue's diagnostics, translatable
        super().__init__(self.diagnostics)

    def localized(self, lang: str | None) -> dict:
        """The OperationOutcome with the first issue's diagnostics in `lang` (as built when English or
        when the message is plain text)."""
        if self.message is None or not lang or lang == SOURCE:
            return self.outcome
        issues = list(self.outcome.get("issue") or [])
        if not issues:
            return self.outcome
        issues[0] = {**issues[0], "diagnostics": self.message.render(lang)}
        return {**self.outcome, "issue": issues}

    @property
    def diagnostics(self) -> str:
        """The first issue's diagnostics text."""
        issues = self.outcome.get("issue") or [{}]
        return str(issues[0].get("diagnostics", ""))

    @classmethod
    def make(
        cls,
        status: int,
        code: str,
        msg: str | Localized,
        expression: list[str] | str | None = None,
        severity: str = "error",
    ) -> "FhirError":
        """Build an error with a single-issue OperationOutcome (a `Msg` is translated at render time)."""
        message = None if isinstance(msg, str) else msg
        return cls(status, operation_outcome(severity, code, str(msg), expression), message=message)

    @classmethod
    def bad_request(
        cls,
        msg: str | Localized,
        code: str = "invalid",
        expression: list[str] | str | None = None,
    ) -> "FhirError":
        """400: the request itself is wrong."""
        return cls.make(400, code, msg, expression)

    @classmethod
    def not_found(cls, msg: str | Localized) -> "FhirError":
        """404: no such resource or endpoint."""
        return cls.make(404, "not-found", msg)

    @classmethod
    def gone(cls, msg: str | Localized) -> "FhirError":
        """410: the resource was deleted."""
        return cls.make(410, "deleted", msg)

    @classmethod
    def conflict(cls, msg: str | Localized) -> "FhirError":
        """409: version conflict or concurrent modification."""
        return cls.make(409, "conflict", msg)

    @classmethod
    def precondition_failed(cls, msg: str | Localized) -> "FhirError":
        """412: If-Match or a conditional interaction's criteria did not hold."""
        return cls.make(412, "conflict", msg)

    @classmethod
    def unprocessable(cls, msg: str | Localized, expression: list[str] | str | None = None) -> "FhirError":
        """422: well-formed but violates a business rule or profile."""
        return cls.make(422, "processing", msg, expression)

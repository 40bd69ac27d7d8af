"""The FhirError tree: every failure a client can cause, as a value with a status.

    FhirError (400)                 bad request, structure or syntax
    ├── Unprocessable (422)         valid JSON that breaks a FHIR rule (business rule, profile)
    ├── NotFound (404)              no such type, resource or version
    ├── Gone (410)                  the resource is deleted
    ├── MethodNotAllowed (405)      the interaction is not supported on this path
    ├── Conflict (409)              id clash, or delete of a referenced resource
    ├── PreconditionFailed (412)    If-Match / conditional outcome mismatch
    ├── Forbidden (403)             switched off by configuration
    ├── RequestTimeout (408)        the body paused longer than the read timeout
    ├── PayloadTooLarge (413)
    ├── TooCostly (422)             a search ran past its deadline
    ├── TooManyRequests (429)       a client's rate limit (with Retry-After)
    ├── NotAcceptable (406)         no representation the client accepts
    └── UnsupportedMediaType (415)

Only ``rest/`` turns them into HTTP responses (``rest/errors.py``).
"""

from __future__ import annotations

from fhir_server.outcome import Issue


class FhirError(Exception):
    """A client-caused failure carrying OperationOutcome issues."""

    status = 400
    code = "invalid"
    headers: tuple[tuple[str, str], ...] = ()  # added to the error response

    def __init__(self, message: str | list[Issue], expression: str | None = None) -> None:
        if isinstance(message, list):
            self.issues = message
        else:
            self.issues = [Issue(self.code, message, expression)]
        super().__init__("; ".join(i.diagnostics for i in self.issues))


class Unprocessable(FhirError):
    status = 422
    code = "processing"


class NotFound(FhirError):
    status = 404
    code = "not-found"


class Gone(FhirError):
    status = 410
    code = "deleted"


class MethodNotAllowed(FhirError):
    status = 405
    code = "not-supported"


class Conflict(FhirError):
    status = 409
    code = "conflict"


class PreconditionFailed(FhirError):
    status = 412
    code = "conflict"


class PayloadTooLarge(FhirError):
    status = 413
    code = "too-costly"


class NotAcceptable(FhirError):
    status = 406
    code = "not-supported"


class UnsupportedMediaType(FhirError):
    status = 415
    code = "not-supported"


class Forbidden(FhirError):
    status = 403
    code = "forbidden"


class RequestTimeout(FhirError):
    status = 408
    code = "timeout"


class TooCostly(FhirError):
    status = 422
    code = "too-costly"


class TooManyRequests(FhirError):
    status = 429
    code = "throttled"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.headers = (("retry-after", str(retry_after)),)


class ServiceUnavailable(FhirError):
    status = 503
    code = "transient"
    headers = (("retry-after", "5"),)


class Unauthorized(FhirError):
    """No valid access token (RFC 6750 §3: the challenge names why)."""

    status = 401
    code = "login"

    def __init__(self, message: str, error: str | None = "invalid_token") -> None:
        super().__init__(message)
        challenge = 'Bearer realm="alliance-fhir"'
        if error:
            challenge += f', error="{error}", error_description="{message}"'
        self.headers = (("www-authenticate", challenge),)

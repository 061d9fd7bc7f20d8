"""The errors an adapter raises; library errors are translated into these where they enter.

    SourceError                 anything that stops one source from answering
    ├── SourceUnavailable       retryable: timeout, connection failure, 429, 5xx
    └── SourceFailure           not worth retrying as is
        ├── SourceAuthError     the source refused our credentials (401/403) or token fetch failed
        ├── SourceProtocolError the source answered with something that is not usable FHIR
        └── SourceRefused       the source refused a write (a slot taken: 409; invalid: 422)

    TypeNotOffered              not an error: the source serves no such resource type at all

Messages are safe to show to operators: they never contain personal identity numbers,
upstream URLs with query strings, or upstream response bodies.
"""

from __future__ import annotations


class SourceError(Exception):
    """One source could not answer. ``reason`` is a short machine-readable code."""

    reason = "error"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SourceUnavailable(SourceError):
    """A transient failure: the same request may succeed later."""

    reason = "unavailable"


class SourceTimeout(SourceUnavailable):
    """The source did not answer within its deadline."""

    reason = "timeout"


class SourceFailure(SourceError):
    """A failure that retrying the same request will not fix."""

    reason = "failure"


class SourceAuthError(SourceFailure):
    """The source refused our credentials, or we could not obtain a token for it."""

    reason = "auth"


class SourceProtocolError(SourceFailure):
    """The source answered with something that is not usable FHIR."""

    reason = "protocol"


class SourceRefused(SourceFailure):
    """The source refused a write, for good: ``status`` is what the gateway answers
    (409 when what was asked for is taken, 404 when it is gone, 422 otherwise)."""

    reason = "refused"

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class TypeNotOffered(Exception):
    """The source serves no such resource type at all (it answered a search of it with 404,
    or with 400 and an OperationOutcome saying ``not-supported``): it holds none of that
    type for anyone. Not a :class:`SourceError`: the source answered, and what it answered
    is true; the gateway takes it as no resources of the type."""

    def __init__(self, resource_type: str) -> None:
        super().__init__(f"the source does not offer {resource_type}")
        self.resource_type = resource_type

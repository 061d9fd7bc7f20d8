"""Consent's own errors. The gateway turns each into an OperationOutcome."""

from __future__ import annotations

from store.db import StoreUnavailable


class AccessLogUnavailable(StoreUnavailable):
    """The access log cannot take an entry now: it is closed, its writer stopped, or the
    database failed. Whatever needed the entry must not go ahead (a 503 to clients)."""

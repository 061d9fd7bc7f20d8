"""Access decisions are values: allowed or not, why, and what to hide."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class AccessDecision:
    """The outcome of one policy evaluation for one principal and one person."""

    allowed: bool
    #: A short machine-readable reason, e.g. ``self`` or ``no-consent``; safe to show.
    reason: str
    #: Source ids whose data must not be returned (blocked data, later issues).
    hidden_sources: frozenset[str] = field(default_factory=frozenset)
    #: Resource types the principal may read (``None``: every served type).
    resource_types: frozenset[str] | None = None

    @classmethod
    def deny(cls, reason: str) -> AccessDecision:
        return cls(allowed=False, reason=reason)

    def may_read_type(self, resource_type: str) -> bool:
        return self.allowed and (
            self.resource_types is None or resource_type in self.resource_types
        )

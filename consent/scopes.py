"""SMART on FHIR scopes (v2, and v1 read/write) narrowing what a principal may do.

A scope is ``context/Type.permissions``: context ``patient``, ``user`` or ``system``;
``Type`` a resource type or ``*``; permissions a subset of ``cruds`` in that order (v2)
or ``read`` / ``write`` / ``*`` (v1). Each principal kind uses its own context: citizens
``patient/``, clinicians ``user/``, integrators ``system/``. Scopes of another context are
ignored, and a principal with no usable scope may do nothing (fail closed).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_SCOPE = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]+)\.([cruds]+|read|write|\*)$")
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}


@dataclass(frozen=True, slots=True)
class Grants:
    """What the scopes allow, per resource type (``*`` covers every type)."""

    permissions: dict[str, frozenset[str]]

    def allows(self, resource_type: str, permission: str) -> bool:
        for key in (resource_type, "*"):
            if permission in self.permissions.get(key, frozenset()):
                return True
        return False

    def readable(self, resource_types: Iterable[str]) -> frozenset[str]:
        """The given types that may be read (read or search)."""
        return frozenset(t for t in resource_types if self.allows(t, "r") or self.allows(t, "s"))


def parse_scopes(scopes: Iterable[str], context: str) -> Grants:
    """Collect the permissions granted in ``context`` (``patient``, ``user`` or ``system``)."""
    permissions: dict[str, set[str]] = {}
    for scope in scopes:
        # Finer-grained v2 scopes (``?category=...``) are not supported yet; granting the
        # whole type for them would widen access, so they grant nothing.
        match = _SCOPE.match(scope)
        if not match or match.group(1) != context:
            continue
        letters = _V1.get(match.group(3), match.group(3))
        if match.group(3) not in _V1 and "".join(sorted(letters, key="cruds".index)) != letters:
            continue  # v2 demands the order c, r, u, d, s; anything else is malformed
        permissions.setdefault(match.group(2), set()).update(letters)
    return Grants({key: frozenset(value) for key, value in permissions.items()})


#: A citizen's own scopes: read everything of one's own; create and withdraw consents
#: and blocks; record and delete own measurements and answered forms; book, move and
#: cancel appointments, ask for renewals and orders (Task), write to care units
#: (Communication).
CITIZEN_SCOPE = (
    "patient/*.rs patient/Consent.cu patient/Observation.cd patient/QuestionnaireResponse.cd"
    " patient/Appointment.cu patient/Task.c patient/Communication.c"
)

"""OIDs as FHIR systems: the ``urn:oid:`` URI form and the bare dotted form.

FHIR names a system by URI, so an OID is written ``urn:oid:1.2.752.129.2.1.3.1``; RIV-TA
services and other non-FHIR sources send the bare ``1.2.752.129.2.1.3.1``. The systems
themselves live beside what they identify (:mod:`fhir_profiles.identifiers`,
:mod:`fhir_profiles.codes`), always in the URI form; these helpers convert.
"""

from __future__ import annotations

import re

OID_PREFIX = "urn:oid:"

_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*)){1,40}$")


def is_oid(text: str) -> bool:
    """True when ``text`` is a bare OID: dotted decimal arcs under 0, 1 or 2, no leading zeros."""
    return _OID.match(text) is not None


def oid_urn(oid: str) -> str:
    """The FHIR system URI ``urn:oid:<oid>`` for a bare OID; ValueError if it is not one."""
    if not is_oid(oid):
        raise ValueError("not an OID")
    return OID_PREFIX + oid


def bare_oid(system: str) -> str:
    """The bare OID of a ``urn:oid:`` system URI; ValueError for any other system."""
    oid = system.removeprefix(OID_PREFIX)
    if oid == system or not is_oid(oid):
        raise ValueError("not a urn:oid system")
    return oid

"""The elements a search returns of each resource: ``_elements`` and ``_summary`` (``true``:
the summary elements; ``text``: the narrative and the mandatory elements; ``data``: all
but the narrative), with the SUBSETTED tag FHIR requires on what was cut.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from types import MappingProxyType

from adapters.base import FhirResource
from fhir_profiles.codes import OBSERVATION_VALUE_SYSTEM
from fhir_profiles.resource_types import RESOURCE_TYPES
from fhir_profiles.summary_elements import SUMMARY_ELEMENTS
from gateway.answer.search.parse import SearchSpec

#: The tag FHIR requires on a resource that has had elements left out.
SUBSETTED_TAG: Mapping[str, str] = MappingProxyType(
    {
        "system": OBSERVATION_VALUE_SYSTEM,
        "code": "SUBSETTED",
        "display": "subsetted",
    }
)

#: Elements every projection keeps (FHIR: "servers SHOULD return mandatory elements").
_MANDATORY: Mapping[str, frozenset[str]] = MappingProxyType(
    {t.name: t.mandatory for t in RESOURCE_TYPES.values() if t.mandatory}
)
_ALWAYS_KEPT = frozenset({"resourceType", "id", "meta"})
#: Kept by ``_summary=true`` besides the type's summary elements: FHIR marks them summary
#: in every resource (a modifier extension changes what the rest means).
_SUMMARY_KEPT = frozenset({"implicitRules", "modifierExtension"})
#: Choice elements ([x]) of the served types: ``_elements=effective`` keeps ``effectiveDateTime``.
_CHOICES = frozenset(
    {
        "effective",
        "value",
        "onset",
        "abatement",
        "medication",
        "reported",
        "deceased",
        "occurrence",
        "performed",
        "asNeeded",
    }
)


def elements(spec: SearchSpec, resource: FhirResource) -> FhirResource:
    """``resource`` as the search asks to return it: a copy subsetted by ``_elements``
    or ``_summary`` (each plus id, meta and the type's mandatory elements; ``data``: no
    narrative), tagged SUBSETTED in ``meta.tag``. When nothing is subsetted the resource
    itself is returned; the input is never changed.
    """
    if not spec.subsetted:
        return resource
    keep: Callable[[str], bool]
    mandatory = _MANDATORY.get(spec.resource_type, frozenset()) | _ALWAYS_KEPT
    if spec.elements is not None:
        keep = functools.partial(_is_wanted, spec.elements | mandatory)
    elif spec.summary == "true":
        summary = SUMMARY_ELEMENTS.get(spec.resource_type, frozenset())
        keep = functools.partial(_is_wanted, summary | mandatory | _SUMMARY_KEPT)
    elif spec.summary == "text":
        keep = functools.partial(_is_wanted, mandatory | {"text"})
    else:
        keep = _not_text
    projected = {key: value for key, value in resource.items() if keep(key)}
    meta = dict(resource.get("meta") or {})
    tags = list(meta.get("tag") or [])
    if not any(t.get("code") == "SUBSETTED" for t in tags if isinstance(t, dict)):
        tags.append(dict(SUBSETTED_TAG))
    meta["tag"] = tags
    projected["meta"] = meta
    return projected


def _is_wanted(wanted: frozenset[str], key: str) -> bool:
    # ``_effectiveDateTime`` (a primitive's extensions) travels with ``effectiveDateTime``.
    name = key.removeprefix("_")
    if name in wanted:
        return True
    for choice in _CHOICES & wanted:
        if name.startswith(choice) and name[len(choice) : len(choice) + 1].isupper():
            return True
    return False


def _not_text(key: str) -> bool:
    return key != "text"

"""Whose record a resource is, within its care provider: the care unit (HSA-id) that
produced it, which a unit block (spärr) hides it by.

The unit is read from the elements that name an organisation, in order of trust
(:data:`UNIT_FIELDS`), never from one naming a person (a recorder or requester by HSA-id:
an HSA-id alone does not say which it is, so a reference's ``type`` or literal target
decides); where no element names one, the care unit an adapter tagged the resource with
(it knows its source, say a RIV-TA header's organisation unit). With neither, the unit is
unknown, and a unit block of the provider hides the resource (fail closed:
:mod:`consent.visibility`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from adapters.base import FhirResource
from fhir_profiles.identifiers import HSA_ID_SYSTEM
from fhir_profiles.record_status import CARE_UNIT_TAG

#: Fields that name the organisation (care unit) that produced a resource, in order of trust.
UNIT_FIELDS = (
    "serviceProvider",
    "performer",
    "custodian",
    "author",
    "requester",
    "recorder",
    "managingOrganization",
)
#: Types whose record is another unit's than their first :data:`UNIT_FIELDS` names: a
#: referral or order (ServiceRequest) is the requesting unit's; its performer is the unit
#: asked, whose answer (a DiagnosticReport) is its own record.
UNIT_FIELDS_OF_TYPE: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"ServiceRequest": ("requester",)}
)

#: Who a reference may name that is no care unit: its HSA-id decides nothing of whose
#: record it is.
_PEOPLE = frozenset({"Practitioner", "PractitionerRole", "Patient", "RelatedPerson", "Device"})


def _names_a_person(ref: dict[str, Any]) -> bool:
    kind = ref.get("type")
    literal = ref.get("reference")
    named = literal.partition("/")[0] if isinstance(literal, str) else None
    return kind in _PEOPLE or named in _PEOPLE


def _named_unit(
    resource: FhirResource, provider: str | None, fields: tuple[str, ...] | None = None
) -> str | None:
    """The HSA-id of the care unit named in the resource, if it names one: never a person
    (a recorder or requester named by HSA-id, typed or referenced as such)."""
    if fields is None:
        fields = UNIT_FIELDS_OF_TYPE.get(str(resource.get("resourceType")), UNIT_FIELDS)
    for name in fields:
        value = resource.get(name)
        for ref in value if isinstance(value, list) else [value]:
            if isinstance(ref, dict) and isinstance(ref.get("actor"), dict):
                ref = ref["actor"]  # Immunization.performer: a function and its actor
            if not isinstance(ref, dict) or _names_a_person(ref):
                continue
            identifier = ref.get("identifier")
            if (
                isinstance(identifier, dict)
                and identifier.get("system") == HSA_ID_SYSTEM
                and isinstance(identifier.get("value"), str)
                and identifier["value"] != provider
            ):
                return str(identifier["value"])
    return None


def _adapters_unit(tags: Any) -> str | None:
    """The care unit an adapter tagged the resource with (the first), if any."""
    for tag in tags if isinstance(tags, list) else ():
        if (
            isinstance(tag, dict)
            and tag.get("system") == CARE_UNIT_TAG
            and isinstance(tag.get("code"), str)
            and tag["code"]
        ):
            return str(tag["code"])
    return None


#: Per type, where it names units asked to act, which a block of theirs hides it by too:
#: a referral to a unit tells of care there.
CONCERNED_FIELDS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"ServiceRequest": ("performer",)}
)


def concerned_units_of(resource: FhirResource, provider: str | None) -> list[str]:
    """The care units (HSA-ids) ``resource`` names as asked to act (never a person)."""
    units = []
    for name in CONCERNED_FIELDS.get(str(resource.get("resourceType")), ()):
        value = resource.get(name)
        for ref in value if isinstance(value, list) else [value]:
            unit = _named_unit({name: ref}, provider, (name,))
            if unit is not None and unit not in units:
                units.append(unit)
    return units


def care_unit_of(resource: FhirResource, provider: str | None, tags: Any) -> str | None:
    """The care unit of ``resource`` (from the source holding data for ``provider``), its
    ``meta.tag`` list as the adapter gave it: see the module's docstring."""
    return _named_unit(resource, provider) or _adapters_unit(tags)

"""What a unified record says of itself in ``meta.tag``: where it comes from, whether the
patient may see it yet, and whether it was nullified (makulerad).

* ``care-provider`` and ``care-unit``: the HSA-ids of the care provider and care unit
  whose record it is (set by the merge, from the source's configuration and the record).
* ``approved-for-patient``, stated by a source: RIV-TA's ``approvedForPatient``, the
  responsible clinician's decision that the patient may read the record. Codes ``true``,
  ``false`` and ``unknown`` (the source sent no readable flag). A resource without this
  tag comes from a source that has no such concept (the FHIR regions) and is not held back.
* ``nullified``: the record was withdrawn at the source (RIV-TA ``nullified``); code
  ``true``. Nobody is shown a nullified record.

What a reader is shown of a record (:mod:`consent.visibility`) is read off them with the
functions below.
"""

from __future__ import annotations

from typing import Any

from fhir_profiles.codes import OBSERVATION_CATEGORY_SYSTEM

FhirResource = dict[str, Any]

CARE_PROVIDER_TAG = "https://samlad.se/fhir/CodeSystem/care-provider"
CARE_UNIT_TAG = "https://samlad.se/fhir/CodeSystem/care-unit"
#: A care unit a record names as asked to act, besides the unit whose record it is (a
#: referral's performer): a block of that unit hides the record too, since it tells of
#: care there.
CONCERNED_UNIT_TAG = "https://samlad.se/fhir/CodeSystem/concerned-unit"
APPROVED_FOR_PATIENT_TAG = "https://samlad.se/fhir/CodeSystem/approved-for-patient"
NULLIFIED_TAG = "https://samlad.se/fhir/CodeSystem/nullified"

#: The codes of :data:`APPROVED_FOR_PATIENT_TAG`.
APPROVED = "true"
NOT_APPROVED = "false"
APPROVAL_UNKNOWN = "unknown"


def _tag_codes(resource: FhirResource, system: str) -> list[object]:
    meta = resource.get("meta")
    tags = meta.get("tag") if isinstance(meta, dict) else None
    if not isinstance(tags, list):
        return []
    return [t.get("code") for t in tags if isinstance(t, dict) and t.get("system") == system]


def approval_tag(approved: bool | None) -> FhirResource:
    """The ``meta.tag`` stating ``approvedForPatient`` (None: the flag could not be read)."""
    code = APPROVAL_UNKNOWN if approved is None else APPROVED if approved else NOT_APPROVED
    display = {
        APPROVED: "Approved for the patient",
        NOT_APPROVED: "Not yet approved for the patient",
        APPROVAL_UNKNOWN: "Approval for the patient unknown",
    }[code]
    return {"system": APPROVED_FOR_PATIENT_TAG, "code": code, "display": display}


def nullified_tag() -> FhirResource:
    """The ``meta.tag`` marking a nullified (makulerad) record."""
    return {"system": NULLIFIED_TAG, "code": "true", "display": "Nullified at the source"}


def care_unit_tag(hsa_id: str) -> FhirResource:
    """The ``meta.tag`` naming the care unit (HSA-id) whose record it is, where an adapter
    knows it and no element of the resource says it (see ``gateway/merge/record.py``)."""
    return {"system": CARE_UNIT_TAG, "code": hsa_id}


def held_back_from_patient(resource: FhirResource) -> bool:
    """True when the resource states an approval for the patient other than ``true``.

    Fails closed: a tag with an unreadable or unknown code, or two disagreeing tags, hold
    the resource back; only a resource with no approval tag at all is not held back.
    """
    codes = _tag_codes(resource, APPROVED_FOR_PATIENT_TAG)
    return bool(codes) and any(code != APPROVED for code in codes)


def is_nullified(resource: FhirResource) -> bool:
    """True when the resource carries a nullified tag (whatever its code: fail closed)."""
    return bool(_tag_codes(resource, NULLIFIED_TAG))


def states_record_status(resource: FhirResource) -> bool:
    """True when the resource's source states approval or nullification on its records
    (the resource carries either tag): records of that source may be held back or
    nullified."""
    return bool(
        _tag_codes(resource, APPROVED_FOR_PATIENT_TAG) or _tag_codes(resource, NULLIFIED_TAG)
    )


def concerned_units(resource: FhirResource) -> list[str]:
    """The care units (HSA-ids) a unified resource names as asked to act (see
    :data:`CONCERNED_UNIT_TAG`)."""
    return [
        str(tag["code"])
        for tag in (resource.get("meta") or {}).get("tag", ())
        if isinstance(tag, dict)
        and tag.get("system") == CONCERNED_UNIT_TAG
        and isinstance(tag.get("code"), str)
    ]


def care_tags(resource: FhirResource) -> tuple[str | None, str | None]:
    """(care provider, care unit) HSA-ids recorded on a unified resource."""
    provider = unit = None
    for tag in (resource.get("meta") or {}).get("tag", ()):
        if tag.get("system") == CARE_PROVIDER_TAG:
            provider = tag.get("code")
        elif tag.get("system") == CARE_UNIT_TAG:
            unit = tag.get("code")
    return provider, unit


def observation_categories(resource: FhirResource) -> frozenset[str]:
    """The ``observation-category`` codes of an Observation (``laboratory``,
    ``vital-signs``, ...): what a proxy grant limited to record categories is decided on."""
    codes: set[str] = set()
    categories = resource.get("category")
    for category in categories if isinstance(categories, list) else []:
        codings = category.get("coding") if isinstance(category, dict) else None
        for coding in codings if isinstance(codings, list) else []:
            if isinstance(coding, dict) and coding.get("system") == OBSERVATION_CATEGORY_SYSTEM:
                code = coding.get("code")
                if isinstance(code, str):
                    codes.add(code)
    return frozenset(codes)

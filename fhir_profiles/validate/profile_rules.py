"""Layer 3: the Samlad profiles, one StructureDefinition per emitted type
(``fhir_profiles/profiles``).

The cardinalities and fixed values of each differential are read from its JSON; each of
its constraints is implemented here under its key (:data:`PROFILE_RULES`; a test keeps the
two in step).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any

from fhir_profiles.analytes import analyte_for
from fhir_profiles.codes import (
    ATC_SYSTEM_ALIASES,
    LOINC_SYSTEM,
    ONLINE_ACCESS_SYSTEM,
    ROLE_CLASS_SYSTEM,
    ROLE_CODE_SYSTEM,
    UCUM_SYSTEM,
    has_mappable_coding,
)
from fhir_profiles.conformance import PROFILE_FOR_TYPE
from fhir_profiles.identifiers import (
    HSA_ID_SYSTEM,
    PERSONNUMMER_SYSTEM,
    SAMORDNINGSNUMMER_SYSTEM,
    InvalidPersonIdentifier,
    canonical_identifier,
)
from fhir_profiles.resource_types import profile_for
from fhir_profiles.validate.issues import Issue, Severity, codes_of, nodes, values_at
from fhir_profiles.vitals import vital_sign_for

_PERSON_NUMBER_TEXT = re.compile(r"(?<![0-9])(?:[0-9]{2})?[0-9]{6}[-+]?[0-9]{4}(?![0-9])")


@dataclass(frozen=True)
class Profile:
    """What the validator uses of one StructureDefinition."""

    url: str
    type: str
    cardinality: tuple[tuple[str, int, int | None], ...]
    fixed: tuple[tuple[str, Any], ...]
    constraint_keys: tuple[str, ...]
    definition: Mapping[str, Any]


def _read_profile(name: str) -> Profile:
    text = resources.files("fhir_profiles").joinpath("profiles", name).read_text("utf-8")
    definition = json.loads(text)
    cardinality: list[tuple[str, int, int | None]] = []
    fixed: list[tuple[str, Any]] = []
    keys: list[str] = []
    for element in definition["differential"]["element"]:
        path = element["path"]
        if "min" in element or "max" in element:
            maximum = element.get("max", "*")
            cardinality.append(
                (path, element.get("min", 0), None if maximum == "*" else int(maximum))
            )
        for key, value in element.items():
            if key.startswith("fixed"):
                fixed.append((path, value))
        keys.extend(constraint["key"] for constraint in element.get("constraint", []))
    return Profile(
        url=definition["url"],
        type=definition["type"],
        cardinality=tuple(cardinality),
        fixed=tuple(fixed),
        constraint_keys=tuple(keys),
        definition=MappingProxyType(definition),
    )


@functools.cache
def profiles() -> Mapping[str, Profile]:
    """Every Samlad StructureDefinition, by canonical URL (read once, then cached)."""
    folder = resources.files("fhir_profiles").joinpath("profiles")
    found = {}
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.name.endswith(".json"):
            profile = _read_profile(entry.name)
            found[profile.url] = profile
    return MappingProxyType(found)


def _children(node: dict[str, Any], name: str) -> int:
    if name.endswith("[x]"):
        stem = name[:-3]
        keys = [
            key for key in node if key.startswith(stem) and key[len(stem) : len(stem) + 1].isupper()
        ]
        return len(keys)
    value = node.get(name)
    if value is None:
        return 0
    return len(value) if isinstance(value, list) else 1


def _check_cardinality(resource: dict[str, Any], profile: Profile, where: str) -> list[Issue]:
    issues: list[Issue] = []
    for path, minimum, maximum in profile.cardinality:
        parts = path.split(".")[1:]
        if not parts:
            continue
        for parent, at in nodes(resource, parts[:-1], where):
            if not isinstance(parent, dict):
                continue
            count = _children(parent, parts[-1])
            if count < minimum:
                message = f"{parts[-1]}: at least {minimum} required by the profile"
                issues.append(Issue("error", f"{at}.{parts[-1]}", message, "profile"))
            if maximum is not None and count > maximum:
                message = f"{parts[-1]}: at most {maximum} allowed by the profile"
                issues.append(Issue("error", f"{at}.{parts[-1]}", message, "profile"))
    for path, value in profile.fixed:
        for found, at in nodes(resource, path.split(".")[1:], where):
            if found != value:
                issues.append(Issue("error", at, f"must be {value!r}", "profile"))
    return issues


Rule = Callable[[dict[str, Any], str], list[Issue]]


def _issue(key: str, path: str, message: str, severity: Severity = "error") -> Issue:
    return Issue(severity, path, message, "profile", key)


def _patient_identifier(resource: dict[str, Any], where: str) -> list[Issue]:
    for identifier in resource.get("identifier") or ():
        if not isinstance(identifier, dict):
            continue
        system = identifier.get("system")
        if system not in (PERSONNUMMER_SYSTEM, SAMORDNINGSNUMMER_SYSTEM):
            continue
        value = identifier.get("value")
        if not isinstance(value, str) or len(value) != 12:
            continue
        try:
            if canonical_identifier(system, value) is not None:
                return []
        except InvalidPersonIdentifier:
            continue
    message = "no valid national personnummer/samordningsnummer in canonical form"
    return [_issue("samlad-pat-1", f"{where}.identifier", message)]


def _obs_loinc(resource: dict[str, Any], where: str) -> list[Issue]:
    code = resource.get("code")
    if not has_mappable_coding(code) or codes_of(code, LOINC_SYSTEM):
        return []
    return [_issue("samlad-obs-1", f"{where}.code", "a map to LOINC exists but no LOINC coding")]


def _obs_ucum(resource: dict[str, Any], where: str) -> list[Issue]:
    quantity = resource.get("valueQuantity")
    if not isinstance(quantity, dict):
        return []
    if quantity.get("system") == UCUM_SYSTEM and isinstance(quantity.get("code"), str):
        return []
    return [_issue("samlad-obs-2", f"{where}.valueQuantity", "not UCUM-coded")]


def _obs_canonical_unit(resource: dict[str, Any], where: str) -> list[Issue]:
    quantity = resource.get("valueQuantity")
    analyte = analyte_for(resource.get("code"))
    if not isinstance(quantity, dict) or analyte is None or quantity.get("code") == analyte.unit:
        return []
    message = f"not in the canonical unit {analyte.unit!r} of the analysis"
    return [_issue("samlad-obs-3", f"{where}.valueQuantity", message, "warning")]


def _quantities(resource: dict[str, Any], where: str) -> list[tuple[Any, object, str]]:
    """Each (quantity, the code it measures, path) of an Observation: its value's and its
    components'."""
    found: list[tuple[Any, object, str]] = []
    if "valueQuantity" in resource:
        found.append((resource["valueQuantity"], resource.get("code"), f"{where}.valueQuantity"))
    for component, at in values_at(resource, "component", where):
        if isinstance(component, dict) and "valueQuantity" in component:
            found.append((component["valueQuantity"], component.get("code"), f"{at}.valueQuantity"))
    return found


def _vital_loinc(resource: dict[str, Any], where: str) -> list[Issue]:
    if codes_of(resource.get("code"), LOINC_SYSTEM):
        return []
    return [_issue("samlad-vs-1", f"{where}.code", "a vital sign without a LOINC coding")]


def _vital_ucum(resource: dict[str, Any], where: str) -> list[Issue]:
    return [
        _issue("samlad-vs-2", at, "not UCUM-coded")
        for quantity, _, at in _quantities(resource, where)
        if not isinstance(quantity, dict)
        or quantity.get("system") != UCUM_SYSTEM
        or not isinstance(quantity.get("code"), str)
    ]


def _vital_unit(resource: dict[str, Any], where: str) -> list[Issue]:
    issues = []
    for quantity, code, at in _quantities(resource, where):
        sign = vital_sign_for(code)
        if sign is None or sign.unit is None or not isinstance(quantity, dict):
            continue
        if quantity.get("system") == UCUM_SYSTEM and quantity.get("code") != sign.unit:
            message = f"not in the unit {sign.unit!r} of the vital sign"
            issues.append(_issue("samlad-vs-3", at, message, "warning"))
    return issues


def _observation_value(resource: dict[str, Any], where: str) -> list[Issue]:
    if any(
        key.startswith("value") or key in ("component", "hasMember", "dataAbsentReason")
        for key in resource
    ):
        return []
    message = "no value, component, member or dataAbsentReason"
    return [_issue("samlad-obs-4", where, message)]


def _atc_system(resource: dict[str, Any], where: str) -> list[Issue]:
    concept = resource.get("medicationCodeableConcept")
    if not isinstance(concept, dict):
        return []
    return [
        _issue("samlad-mr-1", at, "ATC under an alias system")
        for coding, at in values_at(concept, "coding", f"{where}.medicationCodeableConcept")
        if isinstance(coding, dict) and coding.get("system") in ATC_SYSTEM_ALIASES
    ]


def _is_guardians(actor: object) -> bool:
    """The actor a guardian block denies (role class GUARD, :data:`ROLE_CLASS_SYSTEM`)."""
    return _has_role_class(actor, "GUARD")


def _has_role_class(actor: object, code: str) -> bool:
    role = actor.get("role") if isinstance(actor, dict) else None
    codings = role.get("coding") if isinstance(role, dict) else None
    return isinstance(codings, list) and any(
        isinstance(c, dict) and c.get("system") == ROLE_CLASS_SYSTEM and c.get("code") == code
        for c in codings
    )


def _is_seal(resource: dict[str, Any]) -> bool:
    """A seal of the person's online view or their delayed release (a category coding of
    :data:`ONLINE_ACCESS_SYSTEM`)."""
    return any(
        system == ONLINE_ACCESS_SYSTEM
        for system, _ in values_at(resource, "category.coding.system", "Consent")
    )


def _seal_actors(provision: dict[str, Any], where: str) -> list[Issue]:
    """A seal denies the patient's own online access (one actor in role class PAT), and
    may name what it seals (one organisation actor, as a block names it)."""
    actors = provision.get("actor")
    actors = actors if isinstance(actors, list) else []
    patients = [a for a in actors if _has_role_class(a, "PAT")]
    organisations = [a for a in actors if not _has_role_class(a, "PAT")]
    if provision.get("type") != "deny" or len(patients) != 1 or len(organisations) > 1:
        message = "a seal is a deny naming the patient (PAT) once and at most one organisation"
        return [_issue("samlad-consent-1", f"{where}.provision.actor", message)]
    if organisations:
        return _organisation_actor(organisations[0], "CST", where, actors.index(organisations[0]))
    return []


def _is_proxy(actor: object) -> bool:
    """The actor of a proxy grant (role code HPOWATT, :data:`ROLE_CODE_SYSTEM`)."""
    role = actor.get("role") if isinstance(actor, dict) else None
    codings = role.get("coding") if isinstance(role, dict) else None
    return isinstance(codings, list) and any(
        isinstance(c, dict) and c.get("system") == ROLE_CODE_SYSTEM and c.get("code") == "HPOWATT"
        for c in codings
    )


def _proxy_actor(actors: list[Any], kind: str, where: str) -> list[Issue]:
    """A proxy grant: a permit with one actor, the proxy, named by an identifier."""
    reference = actors[0].get("reference") if isinstance(actors[0], dict) else None
    identifier = reference.get("identifier") if isinstance(reference, dict) else None
    if (
        kind != "permit"
        or len(actors) != 1
        or not isinstance(identifier, dict)
        or not identifier.get("value")
    ):
        message = "a proxy grant is a permit with one HPOWATT actor named by an identifier"
        return [_issue("samlad-consent-1", f"{where}.provision.actor", message)]
    return []


def _consent_actor(resource: dict[str, Any], where: str) -> list[Issue]:
    provision = resource.get("provision")
    provision = provision if isinstance(provision, dict) else {}
    if _is_seal(resource):
        return _seal_actors(provision, where)
    actors = provision.get("actor")
    kind = str(provision.get("type"))
    expected = {"permit": "IRCP", "deny": "CST"}.get(kind)
    actors = actors if isinstance(actors, list) else []
    if any(_is_proxy(a) for a in actors):
        return _proxy_actor(actors, kind, where)
    organisations = [a for a in actors if not _is_guardians(a)]
    guardians = len(actors) - len(organisations)
    if (
        len(organisations) != 1
        or not isinstance(organisations[0], dict)
        or guardians > (1 if kind == "deny" else 0)
    ):
        message = "exactly one organisation actor (and, in a deny, at most one GUARD actor)"
        return [_issue("samlad-consent-1", f"{where}.provision.actor", message)]
    actor = organisations[0]
    return _organisation_actor(actor, expected, where, actors.index(actor))


def _organisation_actor(actor: Any, expected: str | None, where: str, index: int) -> list[Issue]:
    """An actor naming a care provider or care unit: an HSA-id with its level, in role
    ``expected``."""
    if not isinstance(actor, dict):
        message = "actor must be an HSA-id with its level, role IRCP (permit) or CST (deny)"
        return [_issue("samlad-consent-1", f"{where}.provision.actor[{index}]", message)]
    roles = {code for code, _ in values_at(actor, "role.coding.code", where)}
    reference = actor.get("reference") if isinstance(actor.get("reference"), dict) else {}
    identifier = reference.get("identifier") if isinstance(reference, dict) else None
    levels = [
        e.get("valueCode")
        for e in (reference.get("extension") or [] if isinstance(reference, dict) else [])
        if isinstance(e, dict) and str(e.get("url", "")).endswith("/hsa-organisation-level")
    ]
    if (
        expected not in roles
        or not isinstance(identifier, dict)
        or identifier.get("system") != HSA_ID_SYSTEM
        or levels not in (["care-provider"], ["care-unit"])
    ):
        message = "actor must be an HSA-id with its level, role IRCP (permit) or CST (deny)"
        at = f"{where}.provision.actor[{index}]"
        return [_issue("samlad-consent-1", at, message)]
    return []


def _appointment_patient(resource: dict[str, Any], where: str) -> list[Issue]:
    for reference, _ in values_at(resource, "participant.actor.reference", where):
        if isinstance(reference, str) and reference.startswith("Patient/"):
            return []
    return [_issue("samlad-app-1", f"{where}.participant", "no participant is the Patient")]


def _attachment_types(resource: dict[str, Any], where: str) -> list[Issue]:
    return [
        _issue("samlad-doc-1", at, "attachment without contentType")
        for attachment, at in values_at(resource, "content.attachment", where)
        if isinstance(attachment, dict) and not attachment.get("contentType")
    ]


def _no_person_numbers(resource: dict[str, Any], where: str) -> list[Issue]:
    issues = []
    for field in ("diagnostics", "details.text"):
        for text, at in values_at(resource, f"issue.{field}", where):
            if isinstance(text, str) and _PERSON_NUMBER_TEXT.search(text):
                issues.append(_issue("samlad-oo-1", at, "holds a personnummer-shaped number"))
    return issues


def _bundle_entries(resource: dict[str, Any], where: str) -> list[Issue]:
    issues = []
    for entry, at in values_at(resource, "entry", where):
        if not isinstance(entry, dict):
            continue
        search = entry.get("search")
        if not entry.get("fullUrl") or not isinstance(search, dict) or not search.get("mode"):
            issues.append(_issue("samlad-bundle-1", at, "entry without fullUrl or search.mode"))
    return issues


#: The Python implementation of every profile constraint, by its key.
PROFILE_RULES: Mapping[str, Rule] = MappingProxyType(
    {
        "samlad-pat-1": _patient_identifier,
        "samlad-obs-1": _obs_loinc,
        "samlad-obs-2": _obs_ucum,
        "samlad-obs-3": _obs_canonical_unit,
        "samlad-obs-4": _observation_value,
        "samlad-vs-1": _vital_loinc,
        "samlad-vs-2": _vital_ucum,
        "samlad-vs-3": _vital_unit,
        "samlad-mr-1": _atc_system,
        "samlad-app-1": _appointment_patient,
        "samlad-doc-1": _attachment_types,
        "samlad-oo-1": _no_person_numbers,
        "samlad-bundle-1": _bundle_entries,
        "samlad-consent-1": _consent_actor,
    }
)


def profile_issues(resource: dict[str, Any], rtype: str, where: str) -> list[Issue]:
    """Every layer-3 problem of one resource of type ``rtype`` against its profile (chosen
    by :func:`~fhir_profiles.resource_types.profile_for`); [] for a type without profile."""
    profile = profiles().get(profile_for(resource) or PROFILE_FOR_TYPE.get(rtype, ""))
    if profile is None:
        return []
    issues = _check_cardinality(resource, profile, where)
    for key in profile.constraint_keys:
        issues.extend(PROFILE_RULES[key](resource, where))
    return issues

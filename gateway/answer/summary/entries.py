"""The entries of one summary document: their URNs, and each resource rewritten to fit the
document (references resolved or made logical, gateway bookkeeping and source narratives
left out, the IPS profile named, what the IPS requires marked as absent).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterable
from typing import Any

from fhir_profiles.extensions import ALSO_REPORTED_BY_URL, DATA_ABSENT_REASON_URL, FETCHED_AT_URL
from gateway.answer.summary.fhir_values import JsonObject
from gateway.answer.summary.narrative import div

#: Namespace of every UUID in a summary (UUIDv5, so ids are reproducible).
SUMMARY_NAMESPACE = uuid.UUID("6f2b7c1e-3d4a-5b8c-9e0f-a1b2c3d4e5f6")
#: Extensions the gateway adds for its own bookkeeping, left out of the document.
GATEWAY_EXTENSIONS = frozenset({FETCHED_AT_URL, ALSO_REPORTED_BY_URL})


def summary_uuid(*parts: str) -> str:
    return str(uuid.uuid5(SUMMARY_NAMESPACE, "\x1f".join(parts)))


class DocumentEntries:
    """The entries of one document: their fullUrls and how references resolve to them."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.full_urls: dict[str, str] = {}

    def add(self, resource: JsonObject) -> str:
        key = f"{resource['resourceType']}/{resource['id']}"
        full_url = "urn:uuid:" + summary_uuid("entry", self.base_url, key)
        self.full_urls[key] = full_url
        return full_url

    def url_of(self, resource: JsonObject) -> str:
        """The fullUrl of an entry already added."""
        return self.full_urls[f"{resource['resourceType']}/{resource['id']}"]

    def urls(self, resources: Iterable[JsonObject]) -> list[str]:
        return [self.url_of(r) for r in resources]

    def resolve(self, reference: str) -> str | None:
        if reference.startswith(self.base_url + "/"):
            reference = reference[len(self.base_url) + 1 :]
        if reference in self.full_urls.values():
            return reference
        return self.full_urls.get(reference)

    def rewrite(self, value: Any) -> Any:
        """References resolved to the entries' URNs; others made logical or removed."""
        if isinstance(value, list):
            items = [self.rewrite(v) for v in value]
            return [v for v in items if v is not None and v != {}] or None
        if not isinstance(value, dict):
            return value
        out: JsonObject = {}
        for key, item in value.items():
            if key == "reference" and isinstance(item, str) and not item.startswith("#"):
                resolved = self.resolve(item)
                if resolved is not None:
                    out[key] = resolved
                continue
            rewritten = self.rewrite(item)
            if rewritten is not None and rewritten != {}:
                out[key] = rewritten
        if "reference" in value and set(out) == {"type"}:
            return None  # a bare type says nothing once the reference is gone
        return out or None


def _clean_meta(resource: JsonObject, profile: str | None) -> None:
    meta = resource.get("meta")
    meta = dict(meta) if isinstance(meta, dict) else {}
    meta.pop("extension", None)
    if profile:
        meta["profile"] = [profile]
    else:
        meta.pop("profile", None)
    if meta:
        resource["meta"] = meta
    else:
        resource.pop("meta", None)


def _drop_gateway_extensions(value: Any) -> Any:
    if isinstance(value, list):
        return [_drop_gateway_extensions(v) for v in value]
    if not isinstance(value, dict):
        return value
    out: JsonObject = {}
    for key, item in value.items():
        if key == "extension" and isinstance(item, list):
            kept = [
                _drop_gateway_extensions(e)
                for e in item
                if not (isinstance(e, dict) and e.get("url") in GATEWAY_EXTENSIONS)
            ]
            if kept:
                out[key] = kept
            continue
        out[key] = _drop_gateway_extensions(item)
    return out


def prepare(
    resource: JsonObject, document: DocumentEntries, narrative: str, profile: str | None
) -> JsonObject:
    """A copy of ``resource`` fit for the document (see the package docstring)."""
    prepared = _drop_gateway_extensions(copy.deepcopy(resource))
    prepared.pop("text", None)
    prepared = document.rewrite(prepared)
    _clean_meta(prepared, profile)
    prepared["text"] = div(narrative)
    # Keep the conventional order: resourceType, id, meta, text first.
    head = {k: prepared[k] for k in ("resourceType", "id", "meta", "text") if k in prepared}
    return head | {k: v for k, v in prepared.items() if k not in head}


def fix_observation(observation: JsonObject) -> None:
    if not observation.get("performer"):
        observation["performer"] = [
            {"extension": [{"url": DATA_ABSENT_REASON_URL, "valueCode": "unknown"}]}
        ]


def fix_encounter(encounter: JsonObject) -> None:
    diagnoses = [d for d in encounter.get("diagnosis") or () if "condition" in d]
    if diagnoses:
        encounter["diagnosis"] = diagnoses
    else:
        encounter.pop("diagnosis", None)
    if "class" not in encounter:  # required in R4; unknown rather than guessed
        encounter["class"] = {
            "extension": [{"url": DATA_ABSENT_REASON_URL, "valueCode": "unknown"}],
        }


def fix_procedure(procedure: JsonObject) -> None:
    if not any(key.startswith("performed") for key in procedure):  # required by the IPS
        procedure["_performedDateTime"] = {
            "extension": [{"url": DATA_ABSENT_REASON_URL, "valueCode": "unknown"}]
        }


def fix_patient(patient: JsonObject) -> None:
    if not patient.get("birthDate"):
        patient.pop("birthDate", None)
        patient["_birthDate"] = {
            "extension": [{"url": DATA_ABSENT_REASON_URL, "valueCode": "unknown"}]
        }

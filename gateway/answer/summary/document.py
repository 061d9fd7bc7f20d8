"""The patient summary document: the Composition, its author Device and the ``document``
Bundle around the sections, with ids derived from the input.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from fhir_profiles.codes import LOINC_SYSTEM
from fhir_profiles.identifiers import URI_SYSTEM
from fhir_profiles.ips import IPS_PROFILES, SECTION_CODES
from gateway.answer.summary.entries import DocumentEntries, fix_patient, prepare, summary_uuid
from gateway.answer.summary.fhir_values import JsonObject
from gateway.answer.summary.narrative import div, esc, patient_narrative
from gateway.answer.summary.sections import Section, all_sections
from gateway.answer.summary.selection import choose


def build_summary(
    patient: dict[str, Any],
    resources: list[dict[str, Any]],
    *,
    base_url: str,
    now: datetime,
    author: str = "Samlad",
    results_per_analysis: int = 1,
    max_encounters: int = 10,
    incomplete_sources: Sequence[str] = (),
) -> dict[str, Any]:
    """The IPS document (a ``document`` Bundle) of ``patient`` from the unified ``resources``.

    ``patient`` and ``resources`` are what ``RecordReader.everything`` returns (already
    filtered by the access decision: nothing hidden may be passed in). ``base_url`` is the
    gateway's FHIR base, used to derive the entries' URNs; ``now`` (timezone-aware) is the
    document's timestamp and date. ``incomplete_sources`` names sources that did not
    answer: the Composition's narrative then warns that the summary may be incomplete.
    Neither argument is modified.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if results_per_analysis < 1 or max_encounters < 0:
        raise ValueError("results_per_analysis must be >= 1 and max_encounters >= 0")
    timestamp = now.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    chosen = choose(
        resources, results_per_analysis=results_per_analysis, max_encounters=max_encounters
    )

    document = DocumentEntries(base_url)
    patient_id = str(patient["id"])
    seed = hashlib.sha256(
        json.dumps([patient, resources], sort_keys=True, ensure_ascii=False).encode()
    ).hexdigest()
    composition_id = summary_uuid("composition", document.base_url, patient_id, timestamp, seed)
    bundle_id = summary_uuid("bundle", document.base_url, patient_id, timestamp, seed)
    device = _device(author)
    composition_stub: JsonObject = {"resourceType": "Composition", "id": composition_id}
    for resource in [composition_stub, patient, device, *chosen.resources()]:
        document.add(resource)

    prepared_patient = prepare(
        patient, document, patient_narrative(patient), IPS_PROFILES["Patient"]
    )
    fix_patient(prepared_patient)
    sections = all_sections(chosen, document, results_per_analysis=results_per_analysis)
    composition = _composition(
        composition_id,
        timestamp,
        patient=patient,
        prepared_patient=prepared_patient,
        subject_url=document.full_urls[f"Patient/{patient_id}"],
        author=author,
        author_url=document.url_of(device),
        sections=sections,
        incomplete_sources=incomplete_sources,
    )
    resources_in_order = [composition, prepared_patient, device]
    resources_in_order += [entry for built in sections for entry in built.entries]
    return {
        "resourceType": "Bundle",
        "id": bundle_id,
        "meta": {"profile": [IPS_PROFILES["Bundle"]]},
        "identifier": {"system": URI_SYSTEM, "value": f"urn:uuid:{bundle_id}"},
        "type": "document",
        "timestamp": timestamp,
        "entry": [
            {"fullUrl": document.url_of(resource), "resource": resource}
            for resource in resources_in_order
        ],
    }


def _device(author: str) -> JsonObject:
    """The document's author: the gateway software."""
    return {
        "resourceType": "Device",
        "id": summary_uuid("author", author),
        "text": div(f"<p>{esc(author)}: software that assembled this summary</p>"),
        "deviceName": [{"name": author, "type": "user-friendly-name"}],
    }


def _is_restricted(patient: JsonObject) -> bool:
    return any(
        isinstance(s, dict) and s.get("code") == "R"
        for s in (patient.get("meta") or {}).get("security") or ()
    )


def _composition(
    composition_id: str,
    timestamp: str,
    *,
    patient: JsonObject,
    prepared_patient: JsonObject,
    subject_url: str,
    author: str,
    author_url: str,
    sections: Sequence[Section],
    incomplete_sources: Sequence[str],
) -> JsonObject:
    """The Composition: the document's header, narrative and sections."""
    patient_id = str(patient["id"])
    names = prepared_patient.get("name") or [{}]
    patient_display = (
        names[0].get("text")
        or " ".join([*names[0].get("given", ()), names[0].get("family", "")]).strip()
    )
    warning = (
        "<p><b>This summary may be incomplete:</b> no answer from "
        + esc(", ".join(incomplete_sources))
        + ".</p>"
        if incomplete_sources
        else ""
    )
    doc_code, doc_display = SECTION_CODES["document"]
    return {
        "resourceType": "Composition",
        "id": composition_id,
        "meta": {"profile": [IPS_PROFILES["Composition"]]},
        "text": div(
            f"<p>International Patient Summary of {esc(patient_display or patient_id)}"
            f", assembled by {esc(author)} at {esc(timestamp)} from the connected "
            "sources' records.</p>" + warning
        ),
        "identifier": {"system": URI_SYSTEM, "value": f"urn:uuid:{composition_id}"},
        "status": "final",
        # The coding exactly as the profile's pattern: some validators compare it whole.
        "type": {"coding": [{"system": LOINC_SYSTEM, "code": doc_code}], "text": doc_display},
        "subject": {
            "reference": subject_url,
            **({"display": patient_display} if patient_display else {}),
        },
        "date": timestamp,
        "author": [{"reference": author_url, "display": author}],
        "title": "International Patient Summary",
        "confidentiality": "R" if _is_restricted(patient) else "N",
        "section": [built.section for built in sections if built.section is not None],
    }

"""The International Patient Summary (IPS, HL7 FHIR IG 2.0.0) of one unified record.

:func:`build_summary` turns the unified Patient and the normalised resources that
``RecordReader.everything`` returns into a FHIR ``document`` Bundle conforming to the IPS
profiles (``Bundle-uv-ips``, ``Composition-uv-ips``, ``Patient-uv-ips``,
``MedicationRequest-uv-ips``, ``Condition-uv-ips``,
``Observation-results-laboratory-pathology-uv-ips``). It is a pure function: the same
input and ``now`` give the same document, byte for byte (ids and UUIDs are derived from
the input, never random).

What goes in (a *summary*, not the whole record, which ``$everything`` serves):

- **Medication Summary** (LOINC 10160-0): current prescriptions, the MedicationRequests
  whose status is ``active`` or ``on-hold``, newest first. Completed or stopped ones stay
  out; the section narrative says how many were left out.
- **Allergies and Intolerances** (48765-2): none of our sources supply allergy data, so
  the section is always empty, with ``emptyReason`` ``unavailable`` and a narrative that
  says so. (``nilknown`` would be a clinical judgement nobody made.)
- **Problem List** (11450-4): Conditions whose clinical status is active, recurrence or
  relapse (or that have neither a clinical status nor an abatement).
- **History of Past Illness** (11348-0): the other (inactive, remission, resolved)
  Conditions, so that no diagnosis silently disappears.
- **Results** (30954-2): laboratory Observations, the latest ``results_per_analysis``
  per analysis (the first LOINC coding, else the first coding), by effective time
  compared in UTC. Results without an effective time or without any value are not
  candidates: a summary result needs both.
- **History of encounters** (46240-8, "History of Hospitalizations+Outpatient visits"):
  the ``max_encounters`` most recent Encounters that are not planned or cancelled.

Empty required sections carry ``emptyReason`` ``unavailable`` (list-empty-reason);
empty optional sections are left out. Refuted or entered-in-error facts never appear.

How the resources are changed, and why:

- Entries are identified by ``urn:uuid`` fullUrls, UUIDv5 of ``{base_url}/{type}/{id}``,
  and every reference between entries is rewritten to that URN. Resource ids stay the
  gateway's ids, so a reader can still fetch the original.
- References to resources *not* in the document (practitioners, locations, care units)
  keep only their ``identifier`` and ``display`` (a logical reference); one with neither
  is removed. A document must not point at things it does not contain.
- Source narratives (``text``) are replaced by a narrative generated here, every source
  string escaped: a source's XHTML is never copied into the document.
- ``meta.profile`` names the IPS profile the entry conforms to; ``meta.source`` and the
  care tags stay. The gateway's transport extensions (``fetched-at``, ``also-reported-by``)
  are removed: they are not defined in any published package and describe the fetch, not
  the fact. Codings, units and the ``original-quantity`` extension are kept as they are.
- An Observation must name a performer under the IPS: one without any is given a
  Reference carrying only the ``data-absent-reason`` extension (``unknown``). Nothing
  clinical is ever added.

The document's author is a Device (the gateway software, named ``author``), included in
the Bundle. A Patient labelled ``R`` (restricted) makes the Composition's
confidentiality ``R``; otherwise it is ``N``.
"""

from __future__ import annotations

import copy
import hashlib
import html
import json
import re
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "IPS_PROFILES",
    "SECTION_CODES",
    "build_summary",
]

JsonObject = dict[str, Any]

IPS_BASE = "http://hl7.org/fhir/uv/ips/StructureDefinition/"
#: The IPS profile each kind of entry conforms to (and names in ``meta.profile``).
IPS_PROFILES: Mapping[str, str] = {
    "Bundle": IPS_BASE + "Bundle-uv-ips",
    "Composition": IPS_BASE + "Composition-uv-ips",
    "Patient": IPS_BASE + "Patient-uv-ips",
    "MedicationRequest": IPS_BASE + "MedicationRequest-uv-ips",
    "Condition": IPS_BASE + "Condition-uv-ips",
    "Observation": IPS_BASE + "Observation-results-laboratory-pathology-uv-ips",
}

LOINC = "http://loinc.org"
#: LOINC codes of the sections (and the IPS document type).
SECTION_CODES: Mapping[str, tuple[str, str]] = {
    "document": ("60591-5", "Patient summary Document"),
    "medications": ("10160-0", "History of Medication use Narrative"),
    "allergies": ("48765-2", "Allergies and adverse reactions Document"),
    "problems": ("11450-4", "Problem list - Reported"),
    "past_problems": ("11348-0", "History of Past illness Narrative"),
    "results": ("30954-2", "Relevant diagnostic tests/laboratory data Narrative"),
    "encounters": ("46240-8", "History of Hospitalizations+Outpatient visits Narrative"),
}

EMPTY_REASON_SYSTEM = "http://terminology.hl7.org/CodeSystem/list-empty-reason"
DATA_ABSENT_REASON = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CONFIDENTIALITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
ATC_SYSTEM = "http://www.whocc.no/atc"
#: Extensions the gateway adds for its own bookkeeping, left out of the document.
GATEWAY_EXTENSIONS = frozenset(
    {
        "https://samlad.se/fhir/StructureDefinition/fetched-at",
        "https://samlad.se/fhir/StructureDefinition/also-reported-by",
    }
)
#: Namespace of every UUID in a summary (UUIDv5, so ids are reproducible).
SUMMARY_NAMESPACE = uuid.UUID("6f2b7c1e-3d4a-5b8c-9e0f-a1b2c3d4e5f6")

CURRENT_MEDICATION_STATUSES = frozenset({"active", "on-hold"})
ACTIVE_CLINICAL_STATUSES = frozenset({"active", "recurrence", "relapse"})
EXCLUDED_VERIFICATION = frozenset({"refuted", "entered-in-error"})
RESULT_STATUSES = frozenset({"registered", "preliminary", "final", "amended", "corrected"})
LEFT_OUT_ENCOUNTER_STATUSES = frozenset({"planned", "cancelled", "entered-in-error"})

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_REFERENCE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$")


# -- small helpers --------------------------------------------------------------------------


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(SUMMARY_NAMESPACE, "\x1f".join(parts)))


def _esc(value: object) -> str:
    """Text for XHTML: escaped, without characters XML forbids."""
    return html.escape(_XML_INVALID.sub("", str(value)), quote=True)


def _div(body: str) -> JsonObject:
    return {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{body}</div>'}


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _codings(concept: object) -> list[JsonObject]:
    if not isinstance(concept, dict):
        return []
    return [c for c in concept.get("coding") or () if isinstance(c, dict)]


def _concept_text(concept: object) -> str:
    """The human name of a CodeableConcept: its text, else a coding's display, else code."""
    if not isinstance(concept, dict):
        return ""
    if isinstance(concept.get("text"), str) and concept["text"].strip():
        return str(concept["text"])
    for coding in _codings(concept):
        if isinstance(coding.get("display"), str) and coding["display"].strip():
            return str(coding["display"])
    for coding in _codings(concept):
        if coding.get("code"):
            return str(coding["code"])
    return ""


def _code_of(concept: object, system: str | None = None) -> str:
    for coding in _codings(concept):
        if (system is None or coding.get("system") == system) and coding.get("code"):
            return str(coding["code"])
    return ""


def _first_code(concept: object) -> tuple[str, str] | None:
    for coding in _codings(concept):
        if coding.get("code"):
            return str(coding.get("system", "")), str(coding["code"])
    return None


def _instant(value: object) -> datetime | None:
    """A FHIR date/dateTime as an aware UTC datetime (partial dates at their start)."""
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    if re.fullmatch(r"\d{4}", text):
        text += "-01-01"
    elif re.fullmatch(r"\d{4}-\d{2}", text):
        text += "-01"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


_EPOCH = datetime(1, 1, 1, tzinfo=UTC)


def _day(value: object) -> str:
    return value[:10] if isinstance(value, str) else ""


def _status_code(concept: object) -> str:
    return _code_of(concept)


# -- selection -------------------------------------------------------------------------------


def _is_current_problem(condition: JsonObject) -> bool:
    status = _status_code(condition.get("clinicalStatus"))
    if status:
        return status in ACTIVE_CLINICAL_STATUSES
    return not any(key.startswith("abatement") for key in condition)


def _analysis_key(observation: JsonObject) -> tuple[str, str] | None:
    code = observation.get("code")
    loinc = _code_of(code, LOINC)
    return (LOINC, loinc) if loinc else _first_code(code)


def _has_value(observation: JsonObject) -> bool:
    return any(
        key.startswith("value") or key in ("component", "hasMember", "dataAbsentReason")
        for key in observation
    )


def _is_lab(observation: JsonObject) -> bool:
    return any(
        c.get("system") == OBSERVATION_CATEGORY and c.get("code") == "laboratory"
        for concept in observation.get("category") or ()
        for c in _codings(concept)
    )


def _effective(observation: JsonObject) -> datetime | None:
    if "effectiveDateTime" in observation:
        return _instant(observation["effectiveDateTime"])
    period = observation.get("effectivePeriod")
    if isinstance(period, dict):
        return _instant(period.get("end") or period.get("start"))
    return _instant(observation.get("effectiveInstant"))


def _latest_results(observations: Iterable[JsonObject], per_analysis: int) -> list[JsonObject]:
    groups: dict[tuple[str, str], list[tuple[datetime, str, JsonObject]]] = defaultdict(list)
    for obs in observations:
        when = _effective(obs)
        key = _analysis_key(obs)
        if (
            when is None
            or key is None
            or obs.get("status") not in RESULT_STATUSES
            or not _is_lab(obs)
            or not _has_value(obs)
        ):
            continue
        groups[key].append((when, str(obs.get("id", "")), obs))
    chosen: list[tuple[datetime, str, JsonObject]] = []
    for candidates in groups.values():
        candidates.sort(key=lambda c: (c[0], c[1]), reverse=True)
        chosen.extend(candidates[:per_analysis])
    chosen.sort(key=lambda c: (-c[0].timestamp(), _concept_text(c[2].get("code")), c[1]))
    return [obs for _, _, obs in chosen]


def _newest_first(
    resources: Iterable[JsonObject], when: Callable[[JsonObject], object]
) -> list[JsonObject]:
    return sorted(
        resources,
        key=lambda r: (-(_instant(when(r)) or _EPOCH).timestamp(), str(r.get("id", ""))),
    )


def _onset(condition: JsonObject) -> object:
    return condition.get("onsetDateTime") or condition.get("recordedDate")


def _encounter_start(encounter: JsonObject) -> object:
    return (encounter.get("period") or {}).get("start")


# -- rewriting resources -----------------------------------------------------------------------


class _Document:
    """The entries of one document: their fullUrls and how references resolve to them."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.full_urls: dict[str, str] = {}

    def add(self, resource: JsonObject) -> str:
        key = f"{resource['resourceType']}/{resource['id']}"
        full_url = "urn:uuid:" + _uuid("entry", self.base_url, key)
        self.full_urls[key] = full_url
        return full_url

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


def _prepare(
    resource: JsonObject, document: _Document, narrative: str, profile: str | None
) -> JsonObject:
    """A copy of ``resource`` fit for the document (see the module docstring)."""
    prepared = _drop_gateway_extensions(copy.deepcopy(resource))
    prepared.pop("text", None)
    prepared = document.rewrite(prepared)
    _clean_meta(prepared, profile)
    prepared["text"] = _div(narrative)
    # Keep the conventional order: resourceType, id, meta, text first.
    head = {k: prepared[k] for k in ("resourceType", "id", "meta", "text") if k in prepared}
    return head | {k: v for k, v in prepared.items() if k not in head}


def _fix_observation(observation: JsonObject) -> None:
    if not observation.get("performer"):
        observation["performer"] = [
            {"extension": [{"url": DATA_ABSENT_REASON, "valueCode": "unknown"}]}
        ]


def _fix_encounter(encounter: JsonObject) -> None:
    diagnoses = [d for d in encounter.get("diagnosis") or () if "condition" in d]
    if diagnoses:
        encounter["diagnosis"] = diagnoses
    else:
        encounter.pop("diagnosis", None)
    if "class" not in encounter:  # required in R4; unknown rather than guessed
        encounter["class"] = {
            "extension": [{"url": DATA_ABSENT_REASON, "valueCode": "unknown"}],
        }


def _fix_patient(patient: JsonObject) -> None:
    if not patient.get("birthDate"):
        patient.pop("birthDate", None)
        patient["_birthDate"] = {"extension": [{"url": DATA_ABSENT_REASON, "valueCode": "unknown"}]}


# -- narratives --------------------------------------------------------------------------------


def _quantity_text(quantity: object) -> str:
    if not isinstance(quantity, dict) or "value" not in quantity:
        return ""
    unit = quantity.get("unit") or quantity.get("code") or ""
    comparator = quantity.get("comparator", "")
    return f"{comparator}{quantity['value']} {unit}".strip()


def _result_value(observation: JsonObject) -> str:
    if "valueQuantity" in observation:
        return _quantity_text(observation["valueQuantity"])
    if "valueCodeableConcept" in observation:
        return _concept_text(observation["valueCodeableConcept"])
    for key in ("valueString", "valueBoolean", "valueInteger", "valueDateTime", "valueTime"):
        if key in observation:
            return str(observation[key])
    if "dataAbsentReason" in observation:
        return "(" + _concept_text(observation["dataAbsentReason"]) + ")"
    return ""


def _reference_range(observation: JsonObject) -> str:
    for rng in observation.get("referenceRange") or ():
        if isinstance(rng, dict):
            if rng.get("text"):
                return str(rng["text"])
            low, high = _quantity_text(rng.get("low")), _quantity_text(rng.get("high"))
            if low or high:
                return (
                    f"{low} to {high}" if low and high else (f">= {low}" if low else f"<= {high}")
                )
    return ""


def _interpretation(observation: JsonObject) -> str:
    return ", ".join(
        filter(None, (_concept_text(c) for c in observation.get("interpretation") or ()))
    )


def _medication_row(request: JsonObject) -> list[str]:
    medication = request.get("medicationCodeableConcept")
    name = _concept_text(medication) or str(
        (request.get("medicationReference") or {}).get("display", "")
    )
    dosage = "; ".join(
        str(d["text"]) for d in request.get("dosageInstruction") or () if d.get("text")
    )
    return [
        name,
        _code_of(medication, ATC_SYSTEM),
        dosage,
        str(request.get("status", "")),
        _day(request.get("authoredOn")),
    ]


def _condition_row(condition: JsonObject, *, past: bool) -> list[str]:
    code = condition.get("code")
    first = _first_code(code)
    row = [
        _concept_text(code),
        first[1] if first else "",
        _status_code(condition.get("clinicalStatus")),
        _day(_onset(condition)),
    ]
    if past:
        row.append(_day(condition.get("abatementDateTime")))
    return row


def _result_row(observation: JsonObject) -> list[str]:
    code = observation.get("code")
    effective = observation.get("effectiveDateTime")
    if not isinstance(effective, str):
        when = _effective(observation)
        effective = when.date().isoformat() if when else ""
    return [
        _concept_text(code),
        _code_of(code, LOINC),
        _result_value(observation),
        _reference_range(observation),
        _interpretation(observation),
        _day(effective),
    ]


def _encounter_row(encounter: JsonObject) -> list[str]:
    types = ", ".join(filter(None, (_concept_text(t) for t in encounter.get("type") or ())))
    klass = encounter.get("class")
    where = (encounter.get("serviceProvider") or {}).get("display", "")
    return [
        _day(_encounter_start(encounter)),
        types or (str(klass.get("display", "")) if isinstance(klass, dict) else ""),
        str(where),
        str(encounter.get("status", "")),
    ]


def _patient_narrative(patient: JsonObject) -> str:
    names = [
        n.get("text") or " ".join([*n.get("given", ()), n.get("family", "")]).strip()
        for n in patient.get("name") or ()
        if isinstance(n, dict)
    ]
    ids = [str(i.get("value", "")) for i in patient.get("identifier") or () if isinstance(i, dict)]
    return (
        f"<p>{_esc(names[0] if names else 'Name unknown')}"
        f", born {_esc(patient.get('birthDate', 'unknown'))}"
        f", gender {_esc(patient.get('gender', 'unknown'))}"
        + (f", id {_esc(ids[0])}" if ids else "")
        + "</p>"
    )


# -- sections ----------------------------------------------------------------------------------


def _section(
    key: str,
    title: str,
    narrative: str,
    entries: Sequence[str],
    *,
    empty_reason: str | None = None,
) -> JsonObject:
    code, display = SECTION_CODES[key]
    section: JsonObject = {
        "title": title,
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
        "text": _div(narrative),
    }
    if entries:
        section["entry"] = [{"reference": url} for url in entries]
    elif empty_reason:
        section["emptyReason"] = {
            "coding": [
                {
                    "system": EMPTY_REASON_SYSTEM,
                    "code": empty_reason,
                    "display": {"unavailable": "Unavailable", "nilknown": "Nil Known"}.get(
                        empty_reason, empty_reason
                    ),
                }
            ]
        }
    return section


def _is_restricted(patient: JsonObject) -> bool:
    return any(
        isinstance(s, dict) and s.get("code") == "R"
        for s in (patient.get("meta") or {}).get("security") or ()
    )


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
    by_type: dict[str, list[JsonObject]] = defaultdict(list)
    seen: set[tuple[str, str]] = set()
    for resource in resources:
        if not (isinstance(resource, dict) and resource.get("id") and resource.get("resourceType")):
            continue
        key = (str(resource["resourceType"]), str(resource["id"]))
        if key not in seen:  # the first of two resources with one id wins
            seen.add(key)
            by_type[key[0]].append(resource)

    medications_all = [
        m
        for m in by_type["MedicationRequest"]
        if m.get("status") != "entered-in-error"
        and m.get("doNotPerform") is not True
        and ("medicationCodeableConcept" in m or "medicationReference" in m)
    ]
    medications = _newest_first(
        (m for m in medications_all if m.get("status") in CURRENT_MEDICATION_STATUSES),
        lambda m: m.get("authoredOn"),
    )
    conditions = [
        c
        for c in by_type["Condition"]
        if _status_code(c.get("verificationStatus")) not in EXCLUDED_VERIFICATION and c.get("code")
    ]
    problems = _newest_first((c for c in conditions if _is_current_problem(c)), _onset)
    past_problems = _newest_first((c for c in conditions if not _is_current_problem(c)), _onset)
    results = _latest_results(by_type["Observation"], results_per_analysis)
    encounters = _newest_first(
        (e for e in by_type["Encounter"] if e.get("status") not in LEFT_OUT_ENCOUNTER_STATUSES),
        _encounter_start,
    )[:max_encounters]

    document = _Document(base_url)
    patient_id = str(patient["id"])
    seed = hashlib.sha256(
        json.dumps([patient, resources], sort_keys=True, ensure_ascii=False).encode()
    ).hexdigest()
    composition_id = _uuid("composition", document.base_url, patient_id, timestamp, seed)
    bundle_id = _uuid("bundle", document.base_url, patient_id, timestamp, seed)
    device: JsonObject = {"resourceType": "Device", "id": _uuid("author", author)}
    composition_stub: JsonObject = {"resourceType": "Composition", "id": composition_id}
    included = [composition_stub, patient, device, *medications, *problems, *past_problems]
    included += [*results, *encounters]
    for resource in included:
        document.add(resource)

    def urls(items: Iterable[JsonObject]) -> list[str]:
        return [document.full_urls[f"{r['resourceType']}/{r['id']}"] for r in items]

    entries: list[JsonObject] = []

    def entry(resource: JsonObject) -> None:
        key = f"{resource['resourceType']}/{resource['id']}"
        entries.append({"fullUrl": document.full_urls[key], "resource": resource})

    prepared_patient = _prepare(
        patient, document, _patient_narrative(patient), IPS_PROFILES["Patient"]
    )
    _fix_patient(prepared_patient)
    device_resource: JsonObject = {
        **device,
        "text": _div(f"<p>{_esc(author)}: software that assembled this summary</p>"),
        "deviceName": [{"name": author, "type": "user-friendly-name"}],
    }

    med_headers = ["Medication", "ATC", "Dosage", "Status", "Prescribed"]
    prepared_meds = [
        _prepare(
            m,
            document,
            _table(med_headers, [_medication_row(m)]),
            IPS_PROFILES["MedicationRequest"],
        )
        for m in medications
    ]
    for prepared_med in prepared_meds:
        # Explicit: a request to give the medication (the IPS profile's pattern).
        prepared_med["doNotPerform"] = False
    left_out = len(medications_all) - len(medications)
    med_note = (
        f"<p>{left_out} earlier prescription(s) (completed or stopped) are not listed.</p>"
        if left_out
        else ""
    )
    med_section = _section(
        "medications",
        "Medication Summary",
        (
            _table(med_headers, [_medication_row(m) for m in medications]) + med_note
            if medications
            else "<p>No current prescriptions were found in the connected sources.</p>" + med_note
        ),
        urls(medications),
        empty_reason="unavailable",
    )
    allergy_section = _section(
        "allergies",
        "Allergies and Intolerances",
        "<p>No information about allergies and intolerances is available: the connected "
        "sources do not supply allergy data. This does not mean the patient has none.</p>",
        [],
        empty_reason="unavailable",
    )

    problem_headers = ["Problem", "Code", "Clinical status", "Onset"]
    past_headers = [*problem_headers, "Resolved"]
    prepared_problems = [
        _prepare(
            c,
            document,
            _table(problem_headers, [_condition_row(c, past=False)]),
            IPS_PROFILES["Condition"],
        )
        for c in problems
    ]
    prepared_past = [
        _prepare(
            c,
            document,
            _table(past_headers, [_condition_row(c, past=True)]),
            IPS_PROFILES["Condition"],
        )
        for c in past_problems
    ]
    problem_section = _section(
        "problems",
        "Problem List",
        (
            _table(problem_headers, [_condition_row(c, past=False) for c in problems])
            if problems
            else "<p>No current problems were found in the connected sources.</p>"
        ),
        urls(problems),
        empty_reason="unavailable",
    )
    sections = [med_section, allergy_section, problem_section]
    if past_problems:
        sections.append(
            _section(
                "past_problems",
                "History of Past Illness",
                _table(past_headers, [_condition_row(c, past=True) for c in past_problems]),
                urls(past_problems),
            )
        )

    result_headers = ["Test", "LOINC", "Result", "Reference range", "Interpretation", "Date"]
    prepared_results = []
    for obs in results:
        prepared = _prepare(
            obs, document, _table(result_headers, [_result_row(obs)]), IPS_PROFILES["Observation"]
        )
        _fix_observation(prepared)
        prepared_results.append(prepared)
    if results:
        note = (
            "<p>The latest result of each analysis.</p>"
            if results_per_analysis == 1
            else f"<p>The latest {results_per_analysis} results of each analysis.</p>"
        )
        sections.append(
            _section(
                "results",
                "Results",
                note + _table(result_headers, [_result_row(o) for o in results]),
                urls(results),
            )
        )

    encounter_headers = ["Date", "Type", "Care unit", "Status"]
    prepared_encounters = []
    for enc in encounters:
        prepared = _prepare(enc, document, _table(encounter_headers, [_encounter_row(enc)]), None)
        _fix_encounter(prepared)
        prepared_encounters.append(prepared)
    if encounters:
        sections.append(
            _section(
                "encounters",
                "History of Encounters",
                f"<p>The {len(encounters)} most recent encounters.</p>"
                + _table(encounter_headers, [_encounter_row(e) for e in encounters]),
                urls(encounters),
            )
        )

    patient_url = document.full_urls[f"Patient/{patient_id}"]
    device_url = document.full_urls[f"Device/{device['id']}"]
    names = prepared_patient.get("name") or [{}]
    patient_display = (
        names[0].get("text")
        or " ".join([*names[0].get("given", ()), names[0].get("family", "")]).strip()
    )
    warning = (
        "<p><b>This summary may be incomplete:</b> no answer from "
        + _esc(", ".join(incomplete_sources))
        + ".</p>"
        if incomplete_sources
        else ""
    )
    doc_code, doc_display = SECTION_CODES["document"]
    composition: JsonObject = {
        "resourceType": "Composition",
        "id": composition_id,
        "meta": {"profile": [IPS_PROFILES["Composition"]]},
        "text": _div(
            f"<p>International Patient Summary of {_esc(patient_display or patient_id)}"
            f", assembled by {_esc(author)} at {_esc(timestamp)} from the connected "
            "sources' records.</p>" + warning
        ),
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{composition_id}"},
        "status": "final",
        # The coding exactly as the profile's pattern: some validators compare it whole.
        "type": {"coding": [{"system": LOINC, "code": doc_code}], "text": doc_display},
        "subject": {
            "reference": patient_url,
            **({"display": patient_display} if patient_display else {}),
        },
        "date": timestamp,
        "author": [{"reference": device_url, "display": author}],
        "title": "International Patient Summary",
        "confidentiality": "R" if _is_restricted(patient) else "N",
        "section": sections,
    }

    entry(composition)
    entry(prepared_patient)
    entry(device_resource)
    for resource in [
        *prepared_meds,
        *prepared_problems,
        *prepared_past,
        *prepared_results,
        *prepared_encounters,
    ]:
        entry(resource)
    return {
        "resourceType": "Bundle",
        "id": bundle_id,
        "meta": {"profile": [IPS_PROFILES["Bundle"]]},
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{bundle_id}"},
        "type": "document",
        "timestamp": timestamp,
        "entry": entries,
    }

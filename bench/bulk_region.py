"""A FHIR R4 source holding one person with N lab results, for the large-record benches.

The simulated regions hold about 1,100 resources for the test person; this server holds
the test person (191212121212, Tolvan Tolvansson) with any number of Observations, so a
bench can ask what the gateway does with 5,000 or 50,000 of them. It answers what the
``fhir-r4`` adapter asks (``adapters/fhir_r4/``):

* ``POST /fhir/Patient/_search`` (identifier in the form body) and ``GET /fhir/Patient``:
  the person's Patient when the identifier is the canonical personnummer, else nothing;
* ``GET /fhir/Observation?patient=ID&_count=C``: the Observations, ``C`` a page (at most
  :data:`MAX_PAGE`), with ``next`` links; ``_lastUpdated=gtX`` leaves out what was last
  updated at or before ``X``;
* the other patient-compartment types: empty searchsets;
* ``GET /fhir/metadata``: a minimal CapabilityStatement (no token needed).

Every other request needs ``Authorization: Bearer <token>``.

The Observations are laboratory results like Region Nord's (``simregions/data/observations.py``):
panels of analyses taken together, LOINC-coded (some NPU-coded, which the gateway maps),
UCUM quantities, reference ranges, High/Low flags, the performing lab with its HSA-id,
spread evenly over 2001-2026 and deterministic for a given N. They are serialised once,
at start-up, so a page is a join of bytes and the server is never the bottleneck.

With ``--people K`` it holds K people, each with the same N results: the test person
and K - 1 more (``bench-1`` ...), born 1950 onwards with valid numbers (:func:`people`);
their Observations differ only in whom they are about.

    .venv/bin/python -m bench.bulk_region --port 8199 --resources 50000 [--token T] [--people K]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fhir_profiles.identifiers import HSA_ID_SYSTEM, PERSONNUMMER_SYSTEM
from fhir_profiles.resource_types import PATIENT_COMPARTMENT_TYPES
from simregions.clock import local_datetime, utc_instant
from simregions.labs import (
    ANALYSES_BY_KEY,
    LOINC_SYSTEM,
    NPU_SYSTEM,
    PANELS,
    UCUM_SYSTEM,
    LabAnalysis,
)
from simregions.people import make_pnr
from simregions.server import bind_socket, make_server

FHIR_JSON = "application/fhir+json"
PERSON = "191212121212"
PATIENT_ID = "bulk-tolvan"
DEFAULT_TOKEN = "bulk-region-token"  # noqa: S105 - a throw-away token for a loopback server
#: Largest page served, whatever ``_count`` asks for.
MAX_PAGE = 1000
DEFAULT_PAGE = 50
FIRST_SAMPLE = datetime(2001, 1, 1, 7, 30)
LAST_SAMPLE = datetime(2026, 10, 1, 7, 30)
LAB_HSA_ID = "SE2321009099-KLKM"
LAB_NAME = "Klinisk kemi Bulkstad"
OBSERVATION_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
#: Share of results coded with NPU (where the analysis has an NPU code) instead of LOINC.
NPU_SHARE = 0.3


def people(count: int) -> list[tuple[str, str]]:
    """(personnummer, patient id) of the ``count`` people held: the test person first."""
    held = [(PERSON, PATIENT_ID)]
    for number in range(1, count):
        birth = date(1950, 1, 1) + timedelta(days=number * 7)
        held.append((make_pnr(birth, 100 + number % 800), f"bench-{number}"))
    return held


def patient_resource(person: str = PERSON, patient_id: str = PATIENT_ID) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": patient_id,
        "meta": {"versionId": "1", "lastUpdated": "2026-01-15T13:05:00Z"},
        "identifier": [{"use": "official", "system": PERSONNUMMER_SYSTEM, "value": person}],
        "active": True,
        "name": [
            {
                "use": "official",
                "family": "Tolvansson",
                "given": ["Tolvan"],
                "text": "Tolvan Tolvansson",
            }
        ],
        "gender": "male",
        "birthDate": "1912-12-12",
    }


def _quantity(value: float, analysis: LabAnalysis) -> dict[str, Any]:
    return {
        "value": value,
        "unit": analysis.unit_display,
        "system": UCUM_SYSTEM,
        "code": analysis.unit,
    }


def _rounded(value: float, decimals: int) -> float:
    rounded = round(value, decimals)
    return int(rounded) if decimals == 0 else rounded


def observation(
    number: int, analysis: LabAnalysis, rng: random.Random, sampled: datetime
) -> dict[str, Any]:
    """One lab result for the person, as a region's lab would report it."""
    if analysis.npu is not None and rng.random() < NPU_SHARE:
        coding = {"system": NPU_SYSTEM, "code": analysis.npu, "display": analysis.npu_display}
    else:
        coding = {"system": LOINC_SYSTEM, "code": analysis.loinc, "display": analysis.loinc_display}
    raw = max(analysis.typical + rng.gauss(0, analysis.spread), analysis.typical * 0.05)
    value = _rounded(raw, analysis.decimals)
    reference: dict[str, Any] = {}
    if analysis.low is not None:
        reference["low"] = _quantity(analysis.low, analysis)
    if analysis.high is not None:
        reference["high"] = _quantity(analysis.high, analysis)
    low, high, unit = analysis.low, analysis.high, analysis.unit_display
    if low is not None and high is not None:
        reference["text"] = f"{low}-{high} {unit}"
    else:
        reference["text"] = f"<{high} {unit}" if high is not None else f">{low} {unit}"
    issued = utc_instant(sampled + timedelta(hours=3))
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"obs-{number}",
        "meta": {"versionId": "1", "lastUpdated": issued},
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": OBSERVATION_CATEGORY_SYSTEM,
                        "code": "laboratory",
                        "display": "Laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [coding], "text": analysis.name_sv},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "effectiveDateTime": local_datetime(sampled),
        "issued": issued,
        "performer": [
            {
                "reference": "Organization/lab-1",
                "identifier": {"system": HSA_ID_SYSTEM, "value": LAB_HSA_ID},
                "display": LAB_NAME,
            }
        ],
        "valueQuantity": _quantity(value, analysis),
    }
    if analysis.high is not None and value > analysis.high:
        resource["interpretation"] = [
            {"coding": [{"system": INTERPRETATION_SYSTEM, "code": "H", "display": "High"}]}
        ]
    elif analysis.low is not None and value < analysis.low:
        resource["interpretation"] = [
            {"coding": [{"system": INTERPRETATION_SYSTEM, "code": "L", "display": "Low"}]}
        ]
    resource["referenceRange"] = [reference]
    return resource


def _occasions(count: int, rng: random.Random) -> list[list[LabAnalysis]]:
    """Lab occasions (one to three panels each, every analysis once) until ``count``."""
    names = sorted(PANELS)
    occasions: list[list[LabAnalysis]] = []
    total = 0
    while total < count:
        keys: list[str] = []
        for panel in rng.sample(names, rng.randint(1, 3)):
            keys.extend(k for k in PANELS[panel] if k not in keys)
        analyses = [ANALYSES_BY_KEY[k] for k in keys[: count - total]]
        occasions.append(analyses)
        total += len(analyses)
    return occasions


@dataclass(frozen=True)
class BulkData:
    """The person's Observations as serialised search entries, oldest update first."""

    patient: dict[str, Any]
    #: Each a serialised ``Bundle.entry`` (fullUrl, resource, search mode).
    entries: list[bytes]
    #: ``meta.lastUpdated`` of each entry, never decreasing (for ``_lastUpdated``).
    updated: list[str]


def build_data(count: int, base_url: str) -> BulkData:
    """``count`` Observations; the same ones for the same ``count``."""
    rng = random.Random(f"bulk-region:{count}")
    occasions = _occasions(count, rng)
    # Strictly increasing sampling times (whole minutes), so no two results of one analysis
    # coincide (the gateway would merge them as duplicates) and updates never go back.
    span = int((LAST_SAMPLE - FIRST_SAMPLE).total_seconds() // 60)
    step = max(1, span // max(1, len(occasions)))
    entries: list[bytes] = []
    updated: list[str] = []
    number = 0
    gc.disable()  # tens of thousands of small dicts, none in cycles
    try:
        for index, analyses in enumerate(occasions):
            sampled = FIRST_SAMPLE + timedelta(minutes=index * step + rng.randrange(step // 2 + 1))
            for analysis in analyses:
                number += 1
                resource = observation(number, analysis, rng, sampled)
                entry = {
                    "fullUrl": f"{base_url}/Observation/{resource['id']}",
                    "resource": resource,
                    "search": {"mode": "match"},
                }
                entries.append(orjson.dumps(entry))
                updated.append(resource["meta"]["lastUpdated"])
    finally:
        gc.enable()
    # Sampling times only ever increase, but a change to or from summer time can still put
    # an update an hour before the previous one; ``_lastUpdated`` needs them in order.
    order = sorted(range(len(entries)), key=updated.__getitem__)
    return BulkData(patient_resource(), [entries[i] for i in order], [updated[i] for i in order])


def searchset(
    entries: list[bytes], total: int, self_url: str, next_url: str | None = None
) -> bytes:
    links = [{"relation": "self", "url": self_url}]
    if next_url is not None:
        links.append({"relation": "next", "url": next_url})
    head = orjson.dumps({"resourceType": "Bundle", "type": "searchset", "total": total})
    return b"".join(
        [
            head[:-1],
            b',"link":',
            orjson.dumps(links),
            b',"entry":[',
            b",".join(entries),
            b"]}",
        ]
    )


def _outcome(status: int, code: str, text: str) -> Response:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": text}],
    }
    return Response(orjson.dumps(body), status_code=status, media_type=FHIR_JSON)


class BulkRegion:
    """The Starlette app around one :class:`BulkData`."""

    def __init__(self, data: BulkData, base_url: str, token: str, people_held: int = 1) -> None:
        self.data = data
        #: Patient id by identifier token, and the people's patient ids.
        self.by_identifier = {
            f"{PERSONNUMMER_SYSTEM}|{pnr}": (pnr, pid) for pnr, pid in people(people_held)
        }
        self.patient_ids = {pid for _, pid in self.by_identifier.values()}
        self.base_url = base_url
        self.authorization = f"Bearer {token}"
        self.app = Starlette(
            routes=[
                Route("/fhir/metadata", self.metadata, methods=["GET"]),
                Route("/fhir/Patient/_search", self.patient_search_post, methods=["POST"]),
                Route("/fhir/Patient", self.patient_search_get, methods=["GET"]),
                Route("/fhir/{rtype}", self.search, methods=["GET"]),
            ]
        )

    def denied(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != self.authorization:
            return _outcome(401, "login", "a valid bearer token is required")
        return None

    async def metadata(self, request: Request) -> Response:
        body = {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "kind": "instance",
            "fhirVersion": "4.0.1",
            "format": ["json"],
        }
        return Response(orjson.dumps(body), media_type=FHIR_JSON)

    async def patient_search_post(self, request: Request) -> Response:
        params = parse_qsl((await request.body()).decode("utf-8"))
        return self.patient_search(request, params)

    async def patient_search_get(self, request: Request) -> Response:
        return self.patient_search(request, list(request.query_params.multi_items()))

    def patient_search(self, request: Request, params: list[tuple[str, str]]) -> Response:
        refused = self.denied(request)
        if refused is not None:
            return refused
        asked = [v for n, v in params if n == "identifier"]
        found = self.by_identifier.get(asked[0]) if len(asked) == 1 else None
        entries = []
        if found:
            pnr, patient_id = found
            entry = {
                "fullUrl": f"{self.base_url}/Patient/{patient_id}",
                "resource": patient_resource(pnr, patient_id),
                "search": {"mode": "match"},
            }
            entries.append(orjson.dumps(entry))
        return Response(
            searchset(entries, len(entries), f"{self.base_url}/Patient/_search"),
            media_type=FHIR_JSON,
        )

    async def search(self, request: Request) -> Response:
        refused = self.denied(request)
        if refused is not None:
            return refused
        resource_type = request.path_params["rtype"]
        if resource_type not in PATIENT_COMPARTMENT_TYPES:
            return _outcome(404, "not-supported", "resource type not served")
        query = request.query_params
        self_url = f"{self.base_url}/{resource_type}?{request.url.query}"
        patient_id = query.get("patient")
        if resource_type != "Observation" or patient_id not in self.patient_ids:
            return Response(searchset([], 0, self_url), media_type=FHIR_JSON)
        try:
            count = min(MAX_PAGE, max(1, int(query.get("_count", DEFAULT_PAGE))))
            offset = max(0, int(query.get("_offset", "0")))
        except ValueError:
            return _outcome(400, "invalid", "_count and _offset must be whole numbers")
        first = 0
        last_updated = query.get("_lastUpdated")
        if last_updated is not None:
            if not last_updated.startswith("gt"):
                return _outcome(400, "not-supported", "only _lastUpdated=gt... is supported")
            first = bisect.bisect_right(self.data.updated, last_updated[2:])
        total = len(self.data.entries) - first
        start = first + offset
        end = min(start + count, len(self.data.entries))
        next_url = None
        if end < len(self.data.entries):
            params = {"patient": patient_id, "_count": str(count), "_offset": str(end - first)}
            if last_updated is not None:
                params["_lastUpdated"] = last_updated
            next_url = f"{self.base_url}/Observation?{urlencode(params)}"
        body = searchset(self.data.entries[start:end], total, self_url, next_url)
        if patient_id != PATIENT_ID:
            body = body.replace(
                f'"Patient/{PATIENT_ID}"'.encode(), f'"Patient/{patient_id}"'.encode()
            )
        return Response(body, media_type=FHIR_JSON)


async def serve(port: int, count: int, token: str, people_held: int = 1) -> None:
    base_url = f"http://127.0.0.1:{port}/fhir"
    region = BulkRegion(build_data(count, base_url), base_url, token, people_held)
    gc.freeze()  # the data lives as long as the server; no collection needs to visit it
    sock = bind_socket(port=port)
    await make_server(region.app).serve(sockets=[sock])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--resources", type=int, required=True, help="Observations to hold")
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--people", type=int, default=1, help="people held, each with them")
    args = parser.parse_args()
    if args.resources < 1:
        parser.error("--resources must be at least 1")
    asyncio.run(serve(args.port, args.resources, args.token, args.people))


if __name__ == "__main__":
    main()

"""Throughput of the whole normalise-and-merge step, per core, with its parse share.

Takes every patient-compartment resource the three simulated FHIR regions hold (about
7,800 across all their people), serialised as the wire carries them, and times, over
several runs:

* parse: ``orjson.loads`` of each source's JSON;
* unify: :func:`gateway.merge.record.unify`: admission checks, normalisation (dates, codes,
  units, ATC), ids, references, provenance tags, deduplication and Provenance.

Each run works on freshly parsed data, so nothing is normalised twice; the date-time
cache is warm after the first run, as it is for a server answering repeated overviews,
so the first run is printed too. Prints medians in resources per second and the share of
time spent parsing. One process, one core.

    python -m bench.bench_normalise [--runs 9]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime

import orjson

from adapters.config import SourceConfig
from fhir_profiles.identifiers import parse_person_identifier
from fhir_profiles.resource_types import PATIENT_COMPARTMENT_TYPES
from gateway.merge.record import unify
from gateway.run.app import tune_garbage_collector
from gateway.sources import Gathered, Source, SourceRecord, SourceReport, SourceStatus
from simregions.data import build_region_data
from simregions.regions import DEFAULT_REGIONS


class _Unused:
    source_id = "bench"

    async def find_patient(self, person: object) -> None:
        return None

    async def search(self, resource_type: str, patient_id: str) -> list[dict[str, object]]:
        return []

    async def aclose(self) -> None:
        return None


def wire_data() -> list[tuple[Source, bytes, bytes]]:
    """(source, Patient JSON, resources JSON) per region, everyone's records as one person's.

    The benchmark points every resource at the region's test-person Patient so that the
    whole volume passes the same admission checks a real answer does.
    """
    person = "191212121212"
    prepared = []
    for region in DEFAULT_REGIONS:
        data = build_region_data(region)
        local = data.patient_id(person)
        assert local is not None
        patient = next(
            r for r in data.resources if r["resourceType"] == "Patient" and r["id"] == local
        )
        resources = []
        for resource in data.resources:
            if resource["resourceType"] not in PATIENT_COMPARTMENT_TYPES:
                continue
            text = orjson.dumps(resource).decode()
            for other in data.patient_ids.values():
                text = text.replace(f"Patient/{other}", f"Patient/{local}")
            resources.append(orjson.loads(text))
        config = SourceConfig(
            id=f"region-{region.id}",
            kind="fhir-r4",
            base_url="http://127.0.0.1:1/fhir",
            care_provider_hsa_id=region.care_provider_hsa_id,
        )
        prepared.append((Source(config, _Unused()), orjson.dumps(patient), orjson.dumps(resources)))
    return prepared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument(
        "--default-gc",
        action="store_true",
        help="keep CPython's default GC thresholds instead of the gateway's tuning",
    )
    args = parser.parse_args()
    if not args.default_gc:
        tune_garbage_collector()
    person = parse_person_identifier("191212121212")
    prepared = wire_data()
    parse_times, unify_times = [], []
    count = 0
    for _ in range(args.runs):
        started = time.perf_counter()
        records = [
            SourceRecord(source, orjson.loads(patient), orjson.loads(body))
            for source, patient, body in prepared
        ]
        parsed = time.perf_counter()
        now = datetime.now(UTC)
        reports = [
            SourceReport(r.source.id, r.source.id, SourceStatus.OK, now, 0.0, len(r.resources))
            for r in records
        ]
        count = sum(len(r.resources) for r in records)
        record = unify(Gathered(records, reports), person, "bench-patient")
        finished = time.perf_counter()
        parse_times.append(parsed - started)
        unify_times.append(finished - parsed)
        kept = len(record.resources)
    cold = parse_times[0] + unify_times[0]
    parse = statistics.median(parse_times)
    work = statistics.median(unify_times)
    total = parse + work
    print(f"resources per run         {count} ({kept} after deduplication)")
    print(f"runs                      {args.runs}")
    print(f"garbage collector         {'CPython default' if args.default_gc else 'gateway tuning'}")
    print(
        f"parse (orjson)            {count / parse:>10,.0f} resources/s"
        f"  median {parse * 1000:.1f} ms"
    )
    print(
        f"normalise and merge       {count / work:>10,.0f} resources/s  median {work * 1000:.1f} ms"
    )
    print(f"whole step                {count / total:>10,.0f} resources/s  (goal 20,000)")
    print(f"parse share               {parse / total:>10.1%}")
    print(f"first run (cold caches)   {count / cold:>10,.0f} resources/s")


if __name__ == "__main__":
    main()

"""Throughput of the normalise step on lab results: codes, units and date-times.

Builds about 20,000 Observations from the simulated regions' data (all three dialects:
LOINC, NPU and local codes, mg/dL and g/dL units, times without offset), then times
``add_canonical_codings + normalise_quantity + normalise_datetimes`` over fresh copies of
them, several runs, and prints the median in resources per second. Copying is not timed.

    python -m bench.bench_codes [--count 20000] [--runs 7]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from typing import Any

from fhir_profiles.codes import add_canonical_codings
from fhir_profiles.datetimes import normalise_datetimes
from fhir_profiles.units import normalise_quantity
from simregions.data import build_region_data
from simregions.regions import DEFAULT_REGIONS


def observations(count: int) -> list[dict[str, Any]]:
    """``count`` Observations, cycling through every region's lab results."""
    pool = [
        resource
        for region in DEFAULT_REGIONS
        for resource in build_region_data(region).resources
        if resource["resourceType"] == "Observation"
    ]
    return [pool[index % len(pool)] for index in range(count)]


def normalise(resource: dict[str, Any]) -> None:
    """The three steps the gateway applies to an Observation."""
    add_canonical_codings(resource["code"])
    normalise_quantity(resource)
    normalise_datetimes(resource)


def run_once(source: list[dict[str, Any]]) -> float:
    """Seconds to normalise fresh copies of ``source``."""
    batch = copy.deepcopy(source)
    start = time.perf_counter()
    for resource in batch:
        normalise(resource)
    return time.perf_counter() - start


def main() -> None:
    """Print the median throughput of several runs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    source = observations(args.count)
    run_once(source[:1000])  # warm the lazily built tables
    times = [run_once(source) for _ in range(args.runs)]
    median = statistics.median(times)
    print(
        f"normalise (codes + units + datetimes): {args.count / median:,.0f} Observations/s "
        f"(median of {args.runs} runs over {args.count:,}; min {args.count / max(times):,.0f}, "
        f"max {args.count / min(times):,.0f})"
    )


if __name__ == "__main__":
    main()

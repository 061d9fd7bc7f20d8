"""``python -m simregions``: serve simulated regions on loopback until interrupted.

Examples::

    python -m simregions --region nord --port 8101
    python -m simregions --all
    python -m simregions --region vast --latency-ms 200 --fault rate-limit-429
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from simregions.behaviour import FAULTS, Behaviour, BehaviourError
from simregions.launch import serve_regions
from simregions.legacy.spec import LEGACY_REGIONS, LegacyRegionSpec, get_legacy_region
from simregions.regions import DEFAULT_REGIONS, RegionSpec, get_region
from simregions.server import LOOPBACK


def _parser() -> argparse.ArgumentParser:
    ids = ", ".join([*(r.id for r in DEFAULT_REGIONS), *(r.id for r in LEGACY_REGIONS)])
    parser = argparse.ArgumentParser(
        prog="python -m simregions",
        description="Serve simulated Swedish regional systems.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--region", help=f"one region to serve ({ids})")
    which.add_argument("--all", action="store_true", help="serve every region on its default port")
    parser.add_argument("--port", type=int, help="port for --region (default: its own)")
    parser.add_argument("--host", default=LOOPBACK, help="address to bind (default: loopback)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to each response")
    parser.add_argument("--fault", default="none", choices=FAULTS, help="fault mode to start in")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and serve until Ctrl-C."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.all:
        if args.port is not None:
            parser.error("--port applies to --region only")
        specs: list[RegionSpec | LegacyRegionSpec] = [*DEFAULT_REGIONS, *LEGACY_REGIONS]
        ports = [spec.default_port for spec in specs]
    else:
        try:
            spec: RegionSpec | LegacyRegionSpec = get_region(args.region)
        except KeyError:
            try:
                spec = get_legacy_region(args.region)
            except KeyError:
                valid = ", ".join(
                    [*(r.id for r in DEFAULT_REGIONS), *(r.id for r in LEGACY_REGIONS)]
                )
                parser.error(f"unknown region {args.region!r}; valid regions: {valid}")
        specs = [spec]
        ports = [args.port if args.port is not None else spec.default_port]
    try:
        behaviours = [Behaviour(latency_ms=args.latency_ms, fault=args.fault) for _ in specs]
    except BehaviourError as exc:
        parser.error(str(exc))
    for spec, port in zip(specs, ports, strict=True):
        print(f"{spec.name}: {spec.base_url(port, args.host)} (token {spec.token})")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_regions(specs, ports, behaviours, host=args.host))
    return 0


if __name__ == "__main__":
    sys.exit(main())

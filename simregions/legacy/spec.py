"""Region Öst: who it is and where it listens (a legacy XML service, not a FHIR server)."""

from __future__ import annotations

from dataclasses import dataclass

from simregions.regions import CareUnit, UnitKind
from simregions.server import LOOPBACK

#: Every service contract is served below this path.
SERVICE_BASE_PATH = "/rivta"


@dataclass(frozen=True)
class LegacyRegionSpec:
    """One simulated region that speaks RIVTA-style SOAP 1.1 instead of FHIR.

    ``source_system_hsa_id`` is the journal system's own HSA-id, written in every record
    header; ``care_provider_hsa_id`` doubles as the service's logical address.
    """

    id: str
    name: str
    token: str
    default_port: int
    care_provider_hsa_id: str
    care_provider_name: str
    source_system_hsa_id: str
    care_units: tuple[CareUnit, ...]
    vendor: str
    #: How many people besides the test person have a record here.
    people_count: int

    def unit(self, kind: UnitKind) -> CareUnit:
        """Return the region's first care unit of ``kind``."""
        for unit in self.care_units:
            if unit.kind == kind:
                return unit
        raise KeyError(f"region {self.id} has no care unit of kind {kind!r}")

    def base_url(self, port: int | None = None, host: str = LOOPBACK) -> str:
        """The service base URL (the adapter's ``base_url``) when served on ``host:port``."""
        return f"http://{host}:{self.default_port if port is None else port}{SERVICE_BASE_PATH}"


def _unit(key: str, name: str, kind: UnitKind) -> CareUnit:
    return CareUnit(key=key, hsa_id=f"SE2321009004-{key.upper()}", name=name, kind=kind,
                    city="Österhamn")  # fmt: skip


# Made-up HSA-ids in the same unused 23210090xx range as the FHIR regions.
OST = LegacyRegionSpec(
    id="ost",
    name="Region Öst",
    token="sim-ost-token",  # noqa: S106 - a published simulation token, not a secret
    default_port=8104,
    care_provider_hsa_id="SE2321009004-OST0",
    care_provider_name="Region Öst",
    source_system_hsa_id="SE2321009004-JRN1",
    care_units=(
        _unit("vcoh", "Vårdcentralen Österhamn", "primary-care"),
        _unit("vclj", "Vårdcentralen Ljungsätra", "primary-care"),
        _unit("medo", "Medicinkliniken Österhamns lasarett", "hospital-clinic"),
        _unit("akut", "Akutmottagningen Österhamns lasarett", "emergency"),
        _unit("barn", "Barnmottagningen Österhamn", "paediatric"),
        _unit("klko", "Klinisk kemi Öst", "laboratory"),
        # Appended last, so that the first unit of each kind, which records are built
        # at, stays the same.
        _unit("rtgo", "Röntgenavdelningen Österhamns lasarett", "hospital-clinic"),
        _unit("pato", "Klinisk patologi Öst", "laboratory"),
    ),
    vendor="Östjournal 4 (RIVTA BP 2.1)",
    people_count=50,
)

LEGACY_REGIONS: tuple[LegacyRegionSpec, ...] = (OST,)


def get_legacy_region(region_id: str) -> LegacyRegionSpec:
    """Return the legacy region called ``region_id``; KeyError lists the valid ids."""
    for region in LEGACY_REGIONS:
        if region.id == region_id:
            return region
    valid = ", ".join(region.id for region in LEGACY_REGIONS)
    raise KeyError(f"unknown legacy region {region_id!r}; valid legacy regions: {valid}")

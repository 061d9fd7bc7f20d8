"""The simulated regions: who they are and which FHIR dialect each one speaks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

from fhir_profiles.identifiers import (
    PERSONNUMMER_SYSTEM,
    SAMORDNINGSNUMMER_SYSTEM,
)
from simregions.clock import REFERENCE_DATE
from simregions.server import LOOPBACK

IdentifierFormat = Literal["canonical", "yymmdd-nnnn"]
LabCodeSystem = Literal["loinc", "npu"]
UnitKind = Literal["primary-care", "hospital-clinic", "laboratory", "emergency", "paediatric"]

FHIR_BASE_PATH = "/fhir"


@dataclass(frozen=True)
class CareUnit:
    """A care unit (vårdenhet) of a region, with its HSA-id."""

    key: str
    hsa_id: str
    name: str
    kind: UnitKind
    city: str


@dataclass(frozen=True)
class RegionSpec:
    """One simulated regional system and its dialect.

    * ``identifier_system`` / ``coordination_identifier_system``: the systems the region writes
      personnummer and samordningsnummer under (Region Väst uses one local system for both);
      ``identifier_format`` how it writes the number (see :meth:`patient_identifier`).
    * ``lab_code_system``: LOINC or NPU for laboratory results.
    * ``page_size``: the most entries a searchset page holds; ``page_cursor_param`` the name
      of the opaque cursor in its ``next`` links.
    * ``numeric_ids``: resource ids are sequence numbers rather than UUIDs.
    * ``local_datetimes``: some clinical times are sent without a UTC offset.
    * ``alternative_units``: a few analyses are reported in non-Swedish units (mg/dL, g/dL, U/L).
    * ``withholds_labs``: the region shares no laboratory results (no laboratory Observation,
      no laboratory DiagnosticReport), as some regions keep them from online access.
    * ``shares_from``: the region shares nothing dated before these days, per resource type
      (``"*"``: every type), as a region's online record starts at a date.
    """

    id: str
    name: str
    token: str
    page_size: int
    identifier_system: str
    coordination_identifier_system: str
    identifier_format: IdentifierFormat
    lab_code_system: LabCodeSystem
    default_port: int
    care_provider_hsa_id: str
    care_provider_name: str
    care_units: tuple[CareUnit, ...]
    page_cursor_param: str
    numeric_ids: bool
    local_datetimes: bool
    alternative_units: bool
    vendor: str
    withholds_labs: bool = False
    shares_from: tuple[tuple[str, date], ...] = ()

    def unit(self, kind: UnitKind) -> CareUnit:
        """Return the region's first care unit of ``kind``."""
        for unit in self.care_units:
            if unit.kind == kind:
                return unit
        raise KeyError(f"region {self.id} has no care unit of kind {kind!r}")

    def patient_identifier(self, pnr: str) -> tuple[str, str]:
        """The (system, value) this region writes for canonical number ``pnr``.

        In the ``yymmdd-nnnn`` format the separator is ``+`` from the year the person turns
        100 (counted at the simulation's reference date), as on Swedish paper forms.
        """
        coordination = int(pnr[6:8]) > 60
        system = self.coordination_identifier_system if coordination else self.identifier_system
        if self.identifier_format == "canonical":
            return system, pnr
        separator = "+" if REFERENCE_DATE.year - int(pnr[:4]) >= 100 else "-"
        return system, f"{pnr[2:8]}{separator}{pnr[8:]}"

    def base_url(self, port: int | None = None, host: str = LOOPBACK) -> str:
        """The FHIR base URL of this region when served on ``host:port``."""
        return f"http://{host}:{self.default_port if port is None else port}{FHIR_BASE_PATH}"


def _units(
    prefix: str, city: str, names: tuple[tuple[str, str, UnitKind], ...]
) -> tuple[CareUnit, ...]:
    return tuple(
        CareUnit(key=key, hsa_id=f"{prefix}-{key.upper()}", name=name, kind=kind, city=city)
        for key, name, kind in names
    )


# The organisation numbers behind these HSA-ids are made up (the 23210090xx range is not used
# by any real region), so nothing here can be mistaken for a real care unit.
_NORD = RegionSpec(
    id="nord",
    name="Region Nord",
    token="sim-nord-token",  # noqa: S106 - a published simulation token, not a secret
    page_size=10,
    identifier_system=PERSONNUMMER_SYSTEM,
    coordination_identifier_system=SAMORDNINGSNUMMER_SYSTEM,
    identifier_format="canonical",
    lab_code_system="loinc",
    default_port=8101,
    care_provider_hsa_id="SE2321009001-NORD",
    care_provider_name="Region Nord",
    care_units=_units(
        "SE2321009001",
        "Norrhamn",
        (
            ("vcnb", "Vårdcentralen Norrby", "primary-care"),
            ("vcfj", "Vårdcentralen Fjällbacken", "primary-care"),
            ("medm", "Medicinmottagningen Norrhamns sjukhus", "hospital-clinic"),
            ("akut", "Akutmottagningen Norrhamns sjukhus", "emergency"),
            ("barn", "Barn- och ungdomsmottagningen Norrhamn", "paediatric"),
            ("klkm", "Klinisk kemi Norrhamn", "laboratory"),
        ),
    ),
    page_cursor_param="_cursor",
    numeric_ids=False,
    local_datetimes=False,
    alternative_units=False,
    vendor="Nordjournal",
)

_VAST = RegionSpec(
    id="vast",
    name="Region Väst",
    token="sim-vast-token",  # noqa: S106 - a published simulation token, not a secret
    page_size=25,
    identifier_system="http://regionvast.example.se/identifier/personnummer",
    coordination_identifier_system="http://regionvast.example.se/identifier/personnummer",
    identifier_format="yymmdd-nnnn",
    lab_code_system="loinc",
    default_port=8102,
    care_provider_hsa_id="SE2321009002-VAST",
    care_provider_name="Region Väst",
    care_units=_units(
        "SE2321009002",
        "Älvstaden",
        (
            ("vcal", "Vårdcentralen Älvstaden", "primary-care"),
            ("vchv", "Vårdcentralen Havsviken", "primary-care"),
            ("hjrt", "Hjärtmottagningen Västra sjukhuset", "hospital-clinic"),
            ("akut", "Akutmottagningen Västra sjukhuset", "emergency"),
            ("barn", "Barnmottagningen Älvstaden", "paediatric"),
            ("labm", "Laboratoriemedicin Väst", "laboratory"),
        ),
    ),
    page_cursor_param="_getpages",
    numeric_ids=True,
    local_datetimes=False,
    alternative_units=True,
    vendor="VästCare",
)

_SYD = RegionSpec(
    id="syd",
    name="Region Syd",
    token="sim-syd-token",  # noqa: S106 - a published simulation token, not a secret
    page_size=50,
    identifier_system=PERSONNUMMER_SYSTEM,
    coordination_identifier_system=SAMORDNINGSNUMMER_SYSTEM,
    identifier_format="canonical",
    lab_code_system="npu",
    default_port=8103,
    care_provider_hsa_id="SE2321009003-SYD0",
    care_provider_name="Region Syd",
    care_units=_units(
        "SE2321009003",
        "Sundsvik",
        (
            ("vcss", "Vårdcentralen Söderslätt", "primary-care"),
            ("vcsh", "Vårdcentralen Strandhem", "primary-care"),
            ("endo", "Endokrinmottagningen Sundsviks lasarett", "hospital-clinic"),
            ("akut", "Akutmottagningen Sundsviks lasarett", "emergency"),
            ("barn", "Barn- och ungdomsmedicin Sundsvik", "paediatric"),
            ("labs", "Labmedicin Syd", "laboratory"),
        ),
    ),
    page_cursor_param="ct",
    numeric_ids=False,
    local_datetimes=True,
    alternative_units=False,
    vendor="SydEHR",
)

DEFAULT_REGIONS: tuple[RegionSpec, ...] = (_NORD, _VAST, _SYD)


def get_region(region_id: str) -> RegionSpec:
    """Return the default region called ``region_id``; KeyError lists the valid ids."""
    for region in DEFAULT_REGIONS:
        if region.id == region_id:
            return region
    valid = ", ".join(region.id for region in DEFAULT_REGIONS)
    raise KeyError(f"unknown region {region_id!r}; valid regions: {valid}")

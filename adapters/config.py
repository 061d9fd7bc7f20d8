"""Source configuration: the TOML file that lists the upstream systems.

Example::

    [[sources]]
    id = "region-nord"
    name = "Region Nord"
    kind = "fhir-r4"
    base_url = "http://127.0.0.1:8101/fhir"
    timeout = 5.0

    [sources.auth]
    type = "bearer"
    token = "sim-nord-token"

    [sources.dialect]
    page_size = 10
"""

from __future__ import annotations

import tomllib
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from fhir_profiles.coverage import CATEGORY_CODES


class NoAuth(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["none"] = "none"


class BearerAuth(BaseModel):
    """A static bearer token sent on every request."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["bearer"] = "bearer"
    token: SecretStr


class SmartBackendAuth(BaseModel):
    """SMART Backend Services: client credentials with a signed JWT assertion."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["smart-backend"] = "smart-backend"
    token_url: str
    client_id: str
    private_key_file: Path
    key_id: str | None = None
    algorithm: Literal["RS384", "ES384", "RS256", "ES256"] = "RS384"
    scope: str = "system/*.rs"


SourceAuth = Annotated[NoAuth | BearerAuth | SmartBackendAuth, Field(discriminator="type")]


def _categories(codes: list[str]) -> list[str]:
    unknown = sorted(set(codes) - CATEGORY_CODES)
    if unknown:
        raise ValueError(
            f"unknown categories {unknown}; valid: {', '.join(sorted(CATEGORY_CODES))}"
        )
    return codes


class CoverageConfig(BaseModel):
    """What a source shares, as its operator knows it (``[sources.coverage]``): the
    categories (:data:`fhir_profiles.coverage.CATEGORIES`) it does not share, and since
    when it shares the rest (in all, and per category)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    since: date | None = None
    since_by_category: dict[str, date] = Field(default_factory=dict)
    withholds: list[str] = Field(default_factory=list)

    @field_validator("withholds")
    @classmethod
    def _known(cls, codes: list[str]) -> list[str]:
        return _categories(codes)

    @field_validator("since_by_category")
    @classmethod
    def _known_keys(cls, dates: dict[str, date]) -> dict[str, date]:
        _categories(list(dates))
        return dates


class SourceConfig(BaseModel):
    """One configured upstream system."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    kind: str
    base_url: str = Field(pattern=r"^https?://")
    name: str = ""
    #: HSA-id of the care provider (vårdgivare) whose data this source holds, if it is one.
    care_provider_hsa_id: str | None = Field(default=None, pattern=r"^SE[0-9A-Za-z-]{1,62}$")
    auth: SourceAuth = NoAuth()
    #: Bearer token the source presents when it announces new data for a person.
    notify_token: SecretStr | None = None
    timeout: float = Field(default=5.0, gt=0, le=120)
    #: Dialect settings understood by the adapter of this ``kind``.
    dialect: dict[str, Any] = Field(default_factory=dict)
    #: What the source shares and since when, beside what it says it offers.
    coverage: CoverageConfig = CoverageConfig()

    @property
    def display_name(self) -> str:
        return self.name or self.id


class SourcesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sources: list[SourceConfig] = Field(default_factory=list)


class SourceConfigError(ValueError):
    """The sources file is missing, unreadable or invalid."""


def parse_sources(data: dict[str, Any]) -> list[SourceConfig]:
    """Validate parsed TOML data; source ids must be unique. The error says what is wrong
    where, in one line, without the values."""
    try:
        sources = SourcesFile.model_validate(data).sources
    except ValidationError as exc:
        # One line, each problem as ``location: message``: pydantic's own text spans many
        # lines and repeats the offending values, which may be tokens.
        problems = "; ".join(
            f"{'.'.join(str(part) for part in err['loc']) or 'sources'}: {err['msg']}"
            for err in exc.errors()
        )
        raise SourceConfigError(f"invalid sources configuration: {problems}") from exc
    seen: set[str] = set()
    for source in sources:
        if source.id in seen:
            raise SourceConfigError(f"duplicate source id {source.id!r}")
        seen.add(source.id)
    return sources


def load_sources(path: Path) -> list[SourceConfig]:
    """Read and validate a sources TOML file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SourceConfigError(f"cannot read sources file {path}: {exc}") from exc
    return parse_sources(data)

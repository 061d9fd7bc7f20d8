"""The ``[sources.dialect]`` settings of a fhir-r4 source, and which identifiers they ask
the source for: the systems a person's number is filed under and the forms it is written
in (see :mod:`fhir_profiles.identifiers`)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from adapters.config import SourceConfig, SourceConfigError
from fhir_profiles.identifiers import (
    IDENTIFIER_FORMS,
    IdentifierForm,
    PersonIdentifier,
    system_kind,
)

DEFAULT_MAX_RESPONSE_BYTES = 20 * 1024 * 1024


class FhirR4Dialect(BaseModel):
    """The ``[sources.dialect]`` settings a fhir-r4 source understands; unknown keys fail."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Sent as ``_count``.
    page_size: int = Field(default=50, ge=1, le=1000)
    #: Most pages followed per search; reaching it is an error, never a silent truncation.
    page_cap: int = Field(default=100, ge=1, le=10_000)
    #: The systems the source files identity numbers under; when unset, the national URI
    #: and OID of the person's kind. A national system of the other kind is skipped.
    identifier_systems: tuple[Annotated[str, Field(min_length=1)], ...] | None = Field(
        default=None, min_length=1
    )
    #: The forms the source writes numbers in; when unset, every form identifiers.py knows.
    identifier_formats: tuple[IdentifierForm, ...] | None = Field(default=None, min_length=1)
    #: One system: the same as ``identifier_systems`` with one entry.
    identifier_system: str | None = Field(default=None, min_length=1)
    #: One form: ``canonical`` (12 digits) or ``yymmdd-nnnn`` (10 digits with ``-``, or ``+``
    #: from 100); the same as ``identifier_formats`` with one entry.
    identifier_format: Literal["canonical", "yymmdd-nnnn"] | None = None
    #: Ask every identifier in one OR-search; ``false`` for a source that answers one it
    #: cannot do with an empty result instead of HTTP 400.
    identifier_or_search: bool = True
    #: ``post`` keeps the identity number out of URLs; ``get`` is for sources without _search.
    patient_search: Literal["post", "get"] = "post"
    #: The source honours ``_lastUpdated=gt...``, so a refresh can ask only for changes.
    incremental: bool = True
    max_response_bytes: int = Field(default=DEFAULT_MAX_RESPONSE_BYTES, ge=1024)

    @model_validator(mode="after")
    def _one_way_per_setting(self) -> FhirR4Dialect:
        if self.identifier_system is not None and self.identifier_systems is not None:
            raise ValueError("set identifier_systems or identifier_system, not both")
        if self.identifier_format is not None and self.identifier_formats is not None:
            raise ValueError("set identifier_formats or identifier_format, not both")
        return self

    def systems_for(self, person: PersonIdentifier) -> tuple[str, ...]:
        """The systems to search for ``person``: configured ones not of the other kind."""
        if self.identifier_system is not None:
            return (self.identifier_system,)
        if self.identifier_systems is None:
            return person.national_systems
        return tuple(
            system
            for system in dict.fromkeys(self.identifier_systems)
            if system_kind(system) in (None, "any", person.kind)
        )

    @property
    def forms(self) -> tuple[IdentifierForm, ...]:
        """The forms to search, in order."""
        if self.identifier_format is not None:
            return (self.identifier_format,)
        return self.identifier_formats or IDENTIFIER_FORMS


def parse_dialect(config: SourceConfig) -> FhirR4Dialect:
    """Validate ``config.dialect`` for a fhir-r4 source; raise SourceConfigError if invalid."""
    try:
        return FhirR4Dialect.model_validate(config.dialect)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'dialect'}: {err['msg']}"
            for err in exc.errors()
        )
        message = f"source {config.id!r}: invalid fhir-r4 dialect: {problems}"
        raise SourceConfigError(message) from exc


def format_identifier(person: PersonIdentifier, style: IdentifierForm, today: date) -> str:
    """Render ``person`` as a source expects it (:meth:`PersonIdentifier.format`).

    ``yymmdd-nnnn`` uses ``+`` from the calendar year the person turns 100, as the
    population register does. That is also the only rule under which the 10-digit form
    reads back to the same person with :func:`parse_person_identifier`, which resolves
    the century from the year alone.
    """
    return person.format(style, today=today)

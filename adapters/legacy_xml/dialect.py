"""The ``[sources.dialect]`` settings of a legacy-xml source, checked at start-up."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from adapters.config import SourceConfig, SourceConfigError

DEFAULT_MAX_RESPONSE_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_PATIENTS = 10_000


class LegacyXmlDialect(BaseModel):
    """The ``[sources.dialect]`` settings a legacy-xml source understands; unknown keys fail."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Sent as the RIVTA ``LogicalAddress`` header (usually the care provider's HSA-id).
    logical_address: str | None = Field(default=None, pattern=r"^[A-Za-z0-9\-.]{1,64}$")
    max_response_bytes: int = Field(default=DEFAULT_MAX_RESPONSE_BYTES, ge=1024)
    #: Most Patient ids remembered; the least recently used is forgotten first.
    max_patients: int = Field(default=DEFAULT_MAX_PATIENTS, ge=1, le=10_000_000)
    #: HMAC key for Patient ids; unset means a random key per adapter instance.
    patient_id_secret: SecretStr | None = Field(default=None, min_length=16)


def parse_dialect(config: SourceConfig) -> LegacyXmlDialect:
    """Validate ``config.dialect`` for a legacy-xml source; raise SourceConfigError if invalid."""
    try:
        return LegacyXmlDialect.model_validate(config.dialect)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'dialect'}: {err['msg']}"
            for err in exc.errors()
        )
        message = f"source {config.id!r}: invalid legacy-xml dialect: {problems}"
        raise SourceConfigError(message) from exc

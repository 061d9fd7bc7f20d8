"""Whom the gateway trusts: the token issuers (``[[issuers]]``), and the clients the
development authorization server knows (``[[oauth_clients]]``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: OAuth grant types and client authentication methods a token issuer can declare.
GrantType = Literal["authorization_code", "refresh_token", "client_credentials"]
ClientAuthMethod = Literal["none", "private_key_jwt", "client_secret_basic"]


class IssuerConfig(BaseModel):
    """A trusted token issuer: its ``iss``, the audience it issues for, and its keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    issuer: str
    audience: str
    jwks_url: str | None = None
    jwks_file: Path | None = None
    algorithms: tuple[str, ...] = ("RS256", "RS384", "ES256", "ES384", "PS256", "PS384")
    #: Set only for the local development issuer: the private key ``samlad token`` signs with.
    dev_signing_key_file: Path | None = None
    token_endpoint: str | None = None
    authorization_endpoint: str | None = None
    #: What the issuer supports, as the discovery documents say for the first issuer (the
    #: SMART capabilities follow from them). The development server supports all of these.
    grant_types: tuple[GrantType, ...] = (
        "authorization_code",
        "refresh_token",
        "client_credentials",
    )
    token_endpoint_auth_methods: tuple[ClientAuthMethod, ...] = ("none", "private_key_jwt")

    @model_validator(mode="after")
    def _one_key_source(self) -> Self:
        if (self.jwks_url is None) == (self.jwks_file is None):
            raise ValueError("an issuer needs exactly one of jwks_url or jwks_file")
        unsafe = {"none", "HS256", "HS384", "HS512"} & {a for a in self.algorithms}
        if unsafe:
            raise ValueError(f"algorithms not allowed for trusted issuers: {sorted(unsafe)}")
        return self


class OAuthClientConfig(BaseModel):
    """A client registered with the development authorization server: a public SMART app
    (``redirect_uris``, no keys) or a backend client (``jwks_file`` and the care provider
    it acts for, authenticated with ``private_key_jwt``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str = Field(min_length=1, max_length=200)
    #: The scopes the client may be given; a token never holds more.
    scopes: tuple[str, ...]
    #: Exact redirect URIs of a public app (compared character for character).
    redirect_uris: tuple[str, ...] = ()
    #: The public keys (JWKS) a backend client signs its ``client_assertion`` with.
    jwks_file: Path | None = None
    #: The care provider a backend client acts for (its tokens' ``care_provider_hsa_id``).
    care_provider_hsa_id: str | None = None

    @model_validator(mode="after")
    def _public_or_backend(self) -> Self:
        if self.jwks_file is None:
            if not self.redirect_uris:
                raise ValueError(f"client {self.client_id}: a public app needs redirect_uris")
        elif self.redirect_uris or not self.care_provider_hsa_id:
            raise ValueError(
                f"client {self.client_id}: a backend client (jwks_file) needs "
                "care_provider_hsa_id and has no redirect_uris"
            )
        return self

    @property
    def backend(self) -> bool:
        return self.jwks_file is not None

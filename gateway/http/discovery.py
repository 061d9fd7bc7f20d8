"""Where a client logs in: the OAuth endpoints the gateway names, and the discovery
documents that name them (SMART App Launch 2.x ``.well-known/smart-configuration`` at the
server root and under the FHIR base, and OpenID Connect's ``openid-configuration`` of the
development authorization server).

The endpoints are those of the development authorization server when it runs
(``dev_authorization_server``, dev mode only: :mod:`gateway.run.authserver`); otherwise
those configured for the first trusted issuer (``authorization_endpoint``,
``token_endpoint``, ``jwks_url``), a real issuer in production.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from gateway.fhir_json import FhirJSONResponse
from gateway.settings import Settings
from gateway.trust_config import ClientAuthMethod, GrantType

#: The development authorization server's paths (its issuer is ``{public_base_url}`` + this).
DEV_ISSUER_PATH = "/dev-issuer"
AUTHORIZE_PATH = f"{DEV_ISSUER_PATH}/authorize"
TOKEN_PATH = f"{DEV_ISSUER_PATH}/token"
JWKS_PATH = f"{DEV_ISSUER_PATH}/jwks.json"
OPENID_CONFIGURATION = "/.well-known/openid-configuration"
SMART_CONFIGURATION = "/.well-known/smart-configuration"

#: The scopes a client may ask for (SMART v2; ``patient/Consent.cu`` lets a person manage
#: their consents and blocks).
SCOPES_SUPPORTED = (
    "openid",
    "fhirUser",
    "launch/patient",
    "offline_access",
    "patient/*.rs",
    "patient/Consent.cu",
    "user/*.rs",
    "system/*.rs",
)
GRANT_TYPES: tuple[GrantType, ...] = ("authorization_code", "refresh_token", "client_credentials")
#: ``none``: a public app (PKCE); ``private_key_jwt``: a backend client (RFC 7523).
AUTH_METHODS: tuple[ClientAuthMethod, ...] = ("none", "private_key_jwt")
ASSERTION_ALGORITHMS = ("RS384", "ES384")


@dataclass(frozen=True, slots=True)
class OAuthEndpoints:
    """The issuer and the URLs a client needs to log in (None where not configured), and
    what the issuer supports."""

    issuer: str | None = None
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    jwks_uri: str | None = None
    grant_types: tuple[GrantType, ...] = GRANT_TYPES
    auth_methods: tuple[ClientAuthMethod, ...] = AUTH_METHODS

    def capabilities(self) -> list[str]:
        """The SMART capabilities that follow from the grant types and client
        authentication methods."""
        found: list[str] = []
        if "authorization_code" in self.grant_types:
            found += ["launch-standalone", "context-standalone-patient"]
            if "none" in self.auth_methods:
                found.append("client-public")
            if "client_secret_basic" in self.auth_methods:
                found.append("client-confidential-symmetric")
        if "private_key_jwt" in self.auth_methods:
            found.append("client-confidential-asymmetric")
        if "authorization_code" in self.grant_types:
            found += ["sso-openid-connect", "permission-patient", "permission-user"]
        if "refresh_token" in self.grant_types:
            found.append("permission-offline")
        return [*found, "permission-v2"]

    def scopes(self) -> list[str]:
        """The scopes a client may ask for, without those no grant type can give."""
        needs = {
            "launch/patient": "authorization_code",
            "offline_access": "refresh_token",
            "system/*.rs": "client_credentials",
        }
        return [
            scope
            for scope in SCOPES_SUPPORTED
            if scope not in needs or needs[scope] in self.grant_types
        ]


def oauth_endpoints(settings: Settings) -> OAuthEndpoints:
    """The development authorization server's endpoints when it runs, else the first
    issuer's configured ones."""
    if settings.dev_authorization_server:
        base = settings.public_base_url.rstrip("/")
        return OAuthEndpoints(
            issuer=settings.dev_issuer_url,
            authorization_endpoint=base + AUTHORIZE_PATH,
            token_endpoint=base + TOKEN_PATH,
            jwks_uri=base + JWKS_PATH,
        )
    if not settings.issuers:
        return OAuthEndpoints()
    primary = settings.issuers[0]
    return OAuthEndpoints(
        issuer=primary.issuer,
        authorization_endpoint=primary.authorization_endpoint,
        token_endpoint=primary.token_endpoint,
        jwks_uri=primary.jwks_url,
        grant_types=primary.grant_types,
        auth_methods=primary.token_endpoint_auth_methods,
    )


def _present(document: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in document.items() if value is not None}


def smart_configuration(settings: Settings) -> dict[str, Any]:
    """SMART App Launch / Backend Services discovery document."""
    endpoints = oauth_endpoints(settings)
    return _present(
        {
            "issuer": endpoints.issuer,
            "jwks_uri": endpoints.jwks_uri,
            "authorization_endpoint": endpoints.authorization_endpoint,
            "token_endpoint": endpoints.token_endpoint,
            "grant_types_supported": list(endpoints.grant_types),
            "token_endpoint_auth_methods_supported": list(endpoints.auth_methods),
            "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
            "scopes_supported": endpoints.scopes(),
            "response_types_supported": ["code"],
            "capabilities": endpoints.capabilities(),
            "code_challenge_methods_supported": ["S256"],
        }
    )


def openid_configuration(settings: Settings) -> dict[str, Any]:
    """OpenID Connect discovery of the development authorization server."""
    endpoints = oauth_endpoints(settings)
    return _present(
        {
            "issuer": endpoints.issuer,
            "authorization_endpoint": endpoints.authorization_endpoint,
            "token_endpoint": endpoints.token_endpoint,
            "jwks_uri": endpoints.jwks_uri,
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "grant_types_supported": list(endpoints.grant_types),
            "token_endpoint_auth_methods_supported": list(endpoints.auth_methods),
            "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
            "scopes_supported": endpoints.scopes(),
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "fhirUser"],
        }
    )


def build_discovery_router(settings: Settings) -> APIRouter:
    """The public discovery documents (plain JSON, not FHIR: the class names the type)."""
    router = APIRouter()

    @router.get(f"/fhir{SMART_CONFIGURATION}", response_class=JSONResponse)
    @router.get(SMART_CONFIGURATION, response_class=JSONResponse)
    async def smart_config() -> Any:
        return FhirJSONResponse(smart_configuration(settings), media_type="application/json")

    if settings.dev_authorization_server:

        @router.get(f"{DEV_ISSUER_PATH}{OPENID_CONFIGURATION}", response_class=JSONResponse)
        @router.get(OPENID_CONFIGURATION, response_class=JSONResponse)
        async def openid_config() -> Any:
            return FhirJSONResponse(openid_configuration(settings), media_type="application/json")

    return router

"""The OAuth 2.0 machinery, from authlib: which grants, how clients authenticate, and what
a token holds.

- Authorization code (public apps): PKCE with S256 required (``plain`` refused), the
  redirect URI matched exactly, the code spent when presented and good for
  :data:`~gateway.run.authserver.state.CODE_LIFETIME` seconds.
- Refresh token (with ``offline_access``): each use returns a new one and ends the old;
  a replaced one presented again ends every token of that login.
- Client credentials (backend clients): ``private_key_jwt`` (RFC 7523) with the keys in
  the client's configured JWKS; each assertion's ``jti`` once.

The access token is the development issuer's JWT that ``samlad token`` mints too, with the
logged-in person's claims; the token response adds ``patient`` (with ``launch/patient``)
and an ``id_token`` (with ``openid``).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, ClassVar

from authlib.common.security import generate_token
from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import (
    InvalidClientError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    OAuth2Payload,
    OAuth2Request,
    grants,
)
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from joserfc import jwt
from joserfc.errors import JoseError
from starlette.responses import JSONResponse, Response

from gateway.http.discovery import ASSERTION_ALGORITHMS, oauth_endpoints
from gateway.run.authserver.state import (
    ACCESS_LIFETIME,
    CODE_LIFETIME,
    REFRESH_LIFETIME,
    Client,
    Identity,
    IssuedCode,
    IssuedRefresh,
    Ledger,
    new_family,
)
from gateway.run.dev_issuer import ensure_configured_keys, mint
from gateway.settings import ConfigError, Settings
from gateway.trust_config import IssuerConfig


class FormPayload(OAuth2Payload):  # type: ignore[misc]
    """The request's parameters (the query of a GET, the form of a POST), every value kept
    so that a repeated parameter is noticed."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in items:
            self._datalist[key].append(value)
        self._data = {key: values[0] for key, values in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class FormRequest(OAuth2Request):  # type: ignore[misc]
    """An HTTP request as authlib reads it, built once its form has been read."""

    def __init__(
        self, method: str, uri: str, headers: dict[str, str], items: list[tuple[str, str]]
    ) -> None:
        super().__init__(method, uri, headers=headers)
        self.payload = FormPayload(items)

    @property
    def args(self) -> dict[str, str]:
        return self.payload.data if self.method == "GET" else {}

    @property
    def form(self) -> dict[str, str]:
        return self.payload.data if self.method == "POST" else {}


class S256Only(CodeChallenge):  # type: ignore[misc]
    """PKCE required of every authorization request, with S256 only."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge (S256)")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        super().validate_code_challenge(grant, redirect_uri)


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["none"]

    def save_authorization_code(self, code: str, request: FormRequest) -> None:
        server: DevAuthorizationServer = self.server
        identity: Identity = request.user
        data = request.payload.data
        identity = Identity(
            identity.kind,
            identity.claims,
            identity.subject,
            identity.patient_id,
            data.get("nonce"),
        )
        server.ledger.add_code(
            code,
            IssuedCode(
                client_id=request.client.client_id,
                redirect_uri=request.payload.redirect_uri,
                scope=" ".join(identity.own_scopes(request.scope.split())),
                identity=identity,
                code_challenge=data["code_challenge"],
                code_challenge_method=data["code_challenge_method"],
                expires_at=server.clock() + CODE_LIFETIME,
            ),
        )

    def query_authorization_code(self, code: str, client: Client) -> IssuedCode | None:
        server: DevAuthorizationServer = self.server
        return server.ledger.take_code(code, client.client_id)

    def delete_authorization_code(self, authorization_code: IssuedCode) -> None:
        pass  # spent when presented (query_authorization_code)

    def authenticate_user(self, authorization_code: IssuedCode) -> Identity:
        return authorization_code.identity


class RefreshTokenGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["none"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> IssuedRefresh | None:
        server: DevAuthorizationServer = self.server
        return server.ledger.find_refresh(refresh_token)

    def authenticate_user(self, refresh_token: IssuedRefresh) -> Identity:
        return refresh_token.identity

    def revoke_old_credential(self, refresh_token: IssuedRefresh) -> None:
        server: DevAuthorizationServer = self.server
        server.ledger.replace_refresh(refresh_token)


class ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["private_key_jwt"]


class PrivateKeyJWT(JWTBearerClientAssertion):  # type: ignore[misc]
    """``private_key_jwt``: a JWT signed with one of the client's registered keys, for
    this server's token endpoint, each ``jti`` once."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, server: DevAuthorizationServer) -> None:
        super().__init__(leeway=30)
        self.server = server

    def get_audiences(self) -> list[str]:
        return [self.server.token_endpoint]

    def validate_jti(self, claims: dict[str, Any], jti: str) -> bool:
        return self.server.ledger.first_use_of_assertion(f"{claims['sub']}:{jti}", claims["exp"])

    def resolve_client_public_key(self, client: Client) -> Any:
        return client.keys

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> dict[str, Any]:
        """The assertion's claims, verified with the advertised algorithms only."""
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=list(ASSERTION_ALGORITHMS))
        except JoseError as exc:
            raise InvalidClientError(description="the client assertion is not valid") from exc
        self.verify_claims(token.claims)
        return dict(token.claims)


class DevAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    """authlib's authorization server over the configured clients and the in-memory ledger."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        if not settings.dev_mode or not settings.dev_authorization_server:
            raise ConfigError(
                "refusing: the development authorization server runs only in dev mode"
            )
        issuer = settings.dev_issuer
        if issuer is None:
            raise ConfigError("the development authorization server has no development issuer")
        ensure_configured_keys(issuer)  # made once, as `samlad token` would
        super().__init__()
        self.settings = settings
        self.issuer: IssuerConfig = issuer
        self.ledger = Ledger(clock=lambda: self.clock())
        self.clock = clock
        endpoints = oauth_endpoints(settings)
        assert endpoints.token_endpoint is not None
        self.token_endpoint = endpoints.token_endpoint
        self.clients = {c.client_id: Client(c) for c in settings.oauth_clients}
        self.register_client_auth_method("private_key_jwt", PrivateKeyJWT(self))
        self.register_grant(AuthorizationCodeGrant, [S256Only(required=True)])
        self.register_grant(RefreshTokenGrant)
        self.register_grant(ClientCredentialsGrant)
        self.register_token_generator("default", self._tokens)

    # -- what authlib asks of a framework integration
    def query_client(self, client_id: str) -> Client | None:
        return self.clients.get(client_id)

    def create_oauth2_request(self, request: FormRequest) -> FormRequest:
        return request

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError("no JSON endpoints")

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass

    def handle_response(self, status: int, body: Any, headers: Any) -> Response:
        pairs = dict(headers or ())
        if isinstance(body, dict):
            return JSONResponse(body, status_code=status, headers=pairs)
        return Response(body or b"", status_code=status, headers=pairs)

    def save_token(self, token: dict[str, Any], request: FormRequest) -> None:
        refresh = token.get("refresh_token")
        if refresh is None or request.user is None:
            return
        previous: IssuedRefresh | None = request.refresh_token
        self.ledger.add_refresh(
            refresh,
            IssuedRefresh(
                client_id=request.client.client_id,
                scope=token["scope"],
                identity=request.user,
                expires_at=self.clock() + REFRESH_LIFETIME,
                family=previous.family if previous is not None else new_family(),
            ),
        )

    # -- the tokens
    def _tokens(
        self,
        grant_type: str,
        client: Client,
        user: Identity | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        if user is None and not scope:
            scope = " ".join(client.config.scopes)
        granted = client.get_allowed_scope(scope)
        if granted is None or not granted:
            raise InvalidScopeError("none of the asked scopes is registered for this client")
        now = self.clock()
        if user is None:
            claims = {
                "sub": client.client_id,
                "client_id": client.client_id,
                "care_provider_hsa_id": client.config.care_provider_hsa_id or "",
            }
        else:
            claims = {**user.claims, "sub": user.subject, "azp": client.client_id}
        access = mint(self.issuer, {**claims, "scope": granted}, lifetime=ACCESS_LIFETIME, now=now)
        token: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": access,
            "expires_in": ACCESS_LIFETIME,
            "scope": granted,
        }
        scopes = granted.split()
        if user is not None:
            if include_refresh_token and "offline_access" in scopes:
                token["refresh_token"] = generate_token(48)
            if "launch/patient" in scopes and user.patient_id is not None:
                token["patient"] = user.patient_id
            if "openid" in scopes:
                token["id_token"] = self._id_token(client, user, scopes, now)
        return token

    def _id_token(self, client: Client, user: Identity, scopes: list[str], now: float) -> str:
        claims: dict[str, Any] = {"sub": user.subject, "aud": client.client_id}
        if user.nonce:
            claims["nonce"] = user.nonce
        if "fhirUser" in scopes:
            base = self.settings.fhir_base_url
            if user.kind == "citizen":  # themselves, whoever's record they opened
                claims["fhirUser"] = f"{base}/Patient/{user.subject}"
            else:
                claims["fhirUser"] = f"{base}/Practitioner/{user.subject}"
        return mint(self.issuer, claims, lifetime=ACCESS_LIFETIME, now=now)


def oauth_error(error: OAuth2Error) -> Response:
    """An OAuth error that cannot go back to the client's redirect URI, as JSON."""
    status, body, headers = error()
    return JSONResponse(dict(body), status_code=status, headers=dict(headers))

"""httpx authentication for upstream sources: none, a static bearer token, or SMART backend.

The SMART flow (client credentials with a ``private_key_jwt`` client assertion, RFC 7523)
fetches its access token through the very client the request is sent on: httpx lets an
``Auth`` yield extra requests, so the token request inherits the injected transport
(loopback server, mock or real) and no second client is ever built.

The assertion is signed by authlib's RFC 7523 helper (``private_key_jwt_sign``) with a
``joserfc`` key object. Handing authlib a joserfc key, not PEM text, keeps it off its
deprecated ``authlib.jose`` path, so no DeprecationWarning fires under ``-W error``.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import AsyncGenerator, Callable, Generator
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
from authlib.oauth2.rfc7523 import private_key_jwt_sign
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey, import_key

from adapters.config import BearerAuth, SmartBackendAuth, SourceConfigError
from adapters.errors import SourceAuthError

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

#: SMART Backend Services caps the assertion lifetime at five minutes.
ASSERTION_LIFETIME_SECONDS = 300
#: Used when the token endpoint leaves out ``expires_in`` (it is only RECOMMENDED).
DEFAULT_TOKEN_LIFETIME_SECONDS = 300.0
#: Renew this long before the token expires, so a request never leaves with a dying token.
TOKEN_RENEW_MARGIN_SECONDS = 30.0
#: A token response is a few hundred bytes; refuse to buffer anything that claims to be huge.
MAX_TOKEN_RESPONSE_BYTES = 64 * 1024

_OAUTH_ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")

Clock = Callable[[], float]


class StaticBearerAuth(httpx.Auth):
    """Send one fixed bearer token on every request."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the ``Authorization`` header and send the request once."""
        request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:  # the token must not reach logs through a repr
        return "StaticBearerAuth(<redacted>)"


class SmartBackendServicesAuth(httpx.Auth):
    """SMART Backend Services: a cached client-credentials token, renewed before it expires.

    A 401 from the resource server drops the cached token and retries the request once
    with a fresh one (the server may have revoked it early). Anything wrong at the token
    endpoint raises :class:`~adapters.errors.SourceAuthError`; a network failure there
    stays an httpx error so the adapter translates it like any other unreachable source.
    """

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        key: RSAKey | ECKey,
        key_id: str,
        algorithm: str,
        scope: str,
        clock: Clock = time.monotonic,
    ) -> None:
        self._token_url = token_url
        self._client_id = client_id
        self._key = key
        self._key_id = key_id
        self._algorithm = algorithm
        self._scope = scope
        self._clock = clock
        self._token: str | None = None
        self._renew_at = -math.inf
        # One token fetch at a time: concurrent searches on a cold cache share one token.
        self._lock = anyio.Lock()

    def __repr__(self) -> str:
        return f"SmartBackendServicesAuth(client_id={self._client_id!r})"

    def client_assertion(self) -> str:
        """Return a freshly signed RFC 7523 client assertion (new ``jti`` each time)."""
        try:
            assertion = private_key_jwt_sign(
                self._key,
                client_id=self._client_id,
                token_endpoint=self._token_url,
                alg=self._algorithm,
                header={"kid": self._key_id, "typ": "JWT"},
                expires_in=ASSERTION_LIFETIME_SECONDS,
            )
        except (JoseError, ValueError) as exc:
            raise SourceAuthError("cannot sign the client assertion") from exc
        return str(assertion)

    def _valid_token(self) -> str | None:
        if self._token is not None and self._clock() < self._renew_at:
            return self._token
        return None

    def _token_request(self, original: httpx.Request) -> httpx.Request:
        form = {
            "grant_type": "client_credentials",
            "scope": self._scope,
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self.client_assertion(),
        }
        # A request built outside the client gets no timeout unless we carry it over.
        extensions = {k: v for k, v in original.extensions.items() if k == "timeout"}
        return httpx.Request(
            "POST",
            self._token_url,
            data=form,
            headers={"Accept": "application/json"},
            extensions=extensions,
        )

    async def _store_token(self, response: httpx.Response) -> str:
        """Validate a token response, cache the token and return it."""
        if not _small(response):
            raise SourceAuthError("token endpoint response is too large")
        body = await response.aread()
        if response.status_code != 200:
            raise SourceAuthError(
                f"token endpoint answered HTTP {response.status_code}{_oauth_error(body)}"
            )
        try:
            data: Any = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise SourceAuthError("token endpoint answered with invalid JSON") from exc
        if not isinstance(data, dict):
            raise SourceAuthError("token endpoint answered with something other than an object")
        token = data.get("access_token")
        token_type = data.get("token_type")
        if not isinstance(token, str) or not token or not isinstance(token_type, str):
            raise SourceAuthError("token endpoint response lacks access_token or token_type")
        if token_type.lower() != "bearer":
            raise SourceAuthError("token endpoint issued a token that is not a bearer token")
        lifetime = data.get("expires_in", DEFAULT_TOKEN_LIFETIME_SECONDS)
        if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
            raise SourceAuthError("token endpoint sent an invalid expires_in")
        # Short-lived tokens renew at half their life instead of never being reused.
        margin = min(TOKEN_RENEW_MARGIN_SECONDS, float(lifetime) / 2)
        self._token = token
        self._renew_at = self._clock() + float(lifetime) - margin
        return token

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Attach a bearer token, fetching one first if needed; retry once after a 401."""
        stale: str | None = None
        for _attempt in range(2):
            token = self._valid_token()
            if token is None or token == stale:
                async with self._lock:
                    if stale is not None and self._token == stale:
                        self._token = None
                    # Another request may have fetched a token while we waited for the lock.
                    token = self._valid_token()
                    if token is None:
                        token_response = yield self._token_request(request)
                        token = await self._store_token(token_response)
            request.headers["Authorization"] = f"Bearer {token}"
            response = yield request
            if response.status_code != 401:
                return
            stale = token
            await request.aread()  # the retry resends the body (POST _search forms)
        # A second 401 goes back to the caller, which reports it as an auth failure.

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """Adapters are async only; a sync client cannot share the async token lock."""
        raise RuntimeError("SmartBackendServicesAuth works with httpx.AsyncClient only")
        yield request  # pragma: no cover - makes this a generator


def _small(response: httpx.Response) -> bool:
    length = response.headers.get("Content-Length")
    if length is None:
        return True
    try:
        return int(length) <= MAX_TOKEN_RESPONSE_BYTES
    except ValueError:
        return False


def _oauth_error(body: bytes) -> str:
    """Return ``" (invalid_client)"`` for a standard OAuth error code; never free text."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    code = data.get("error") if isinstance(data, dict) else None
    if isinstance(code, str) and _OAUTH_ERROR_CODE.match(code):
        return f" ({code})"
    return ""


def load_private_key(path: Path, algorithm: str) -> RSAKey | ECKey:
    """Read a PEM or JWK (JSON) private key that fits ``algorithm`` (RS* or ES*)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SourceConfigError(f"cannot read private key file {path}") from exc
    key_type = "RSA" if algorithm.startswith("RS") else "EC"
    try:
        if raw.lstrip().startswith(b"{"):
            key: Any = import_key(orjson.loads(raw))
        elif key_type == "RSA":
            key = RSAKey.import_key(raw)
        else:
            key = ECKey.import_key(raw)
    except (JoseError, ValueError, TypeError, orjson.JSONDecodeError) as exc:
        # The key material must never end up in a message, so the cause stays chained only.
        raise SourceConfigError(f"private key file {path} is not a usable key") from exc
    if not isinstance(key, RSAKey | ECKey) or key.key_type != key_type:
        raise SourceConfigError(f"private key file {path} does not fit algorithm {algorithm}")
    if not key.is_private:
        raise SourceConfigError(f"key file {path} holds no private key")
    return key


def key_id_for(key: RSAKey | ECKey, configured: str | None) -> str:
    """The ``kid`` to send: configured, else the JWK's own ``kid``, else its RFC 7638 thumbprint."""
    if configured:
        return configured
    own = key.kid
    return own if own else key.thumbprint()


def smart_backend_auth(
    settings: SmartBackendAuth, *, clock: Clock = time.monotonic
) -> SmartBackendServicesAuth:
    """Build SMART Backend Services auth; the key is loaded now so a bad file fails at start-up."""
    key = load_private_key(settings.private_key_file, settings.algorithm)
    auth = SmartBackendServicesAuth(
        token_url=settings.token_url,
        client_id=settings.client_id,
        key=key,
        key_id=key_id_for(key, settings.key_id),
        algorithm=settings.algorithm,
        scope=settings.scope,
        clock=clock,
    )
    try:
        # One trial signature: a key that does not fit the algorithm (say a P-256 key
        # for ES384) fails now, not on the first patient's request.
        auth.client_assertion()
    except SourceAuthError as exc:
        raise SourceConfigError(
            f"private key file {settings.private_key_file} cannot sign {settings.algorithm}"
        ) from exc
    return auth


def bearer_auth(settings: BearerAuth) -> StaticBearerAuth:
    """Build auth that sends the configured static bearer token."""
    return StaticBearerAuth(settings.token.get_secret_value())

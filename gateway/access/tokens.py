"""Bearer token verification against the configured trusted issuers.

Each issuer's keys come from a JWKS file or URL. A token is verified for signature
(with the issuer's allowed algorithms only: never ``none`` or HMAC), ``iss``, ``aud``,
``exp`` and ``nbf``. JOSE work is done by joserfc, the JOSE library of the Authlib
project (Authlib 1.9 deprecates its own ``authlib.jose`` in its favour).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from gateway.errors import ServiceUnavailable, Unauthorized
from gateway.memo import BoundedMemo
from gateway.trust_config import IssuerConfig

#: Clock skew tolerated on ``exp`` and ``nbf`` (seconds).
LEEWAY = 30
#: Verified tokens each process remembers until they expire.
REMEMBERED_TOKENS = 10_000
#: A JWKS URL is fetched again at most this often when an unknown key id shows up.
JWKS_REFRESH_INTERVAL = 60.0


class InvalidToken(Exception):
    """The token failed verification; the reason is for the server log only."""


@dataclass
class _IssuerKeys:
    config: IssuerConfig
    keys: KeySet | None = None
    fetched_at: float = 0.0


def _unverified_claims(token: str) -> dict[str, Any]:
    """Read the payload without verifying it, only to pick the issuer to verify with."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("not a compact JWS")
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = orjson.loads(payload)
    except (binascii.Error, ValueError) as exc:
        raise InvalidToken("undecodable payload") from exc
    if not isinstance(claims, dict):
        raise InvalidToken("payload is not an object")
    return claims


class TokenVerifier:
    """Verifies bearer tokens from the trusted issuers and returns their claims."""

    def __init__(self, issuers: list[IssuerConfig], client: httpx.AsyncClient) -> None:
        self._issuers = {issuer.issuer: _IssuerKeys(issuer) for issuer in issuers}
        self._client = client
        self._lock = asyncio.Lock()
        # Verified tokens by SHA-256, until they expire: a client sends the same token
        # with every request, and its signature (RSA: ~0.1 ms) cannot change meanwhile.
        self._verified: BoundedMemo[bytes, tuple[dict[str, Any], float]] = BoundedMemo(
            REMEMBERED_TOKENS
        )

    async def _keys(self, entry: _IssuerKeys, *, refresh: bool = False) -> KeySet:
        if entry.keys is not None and not refresh:
            return entry.keys
        async with self._lock:
            now = time.monotonic()
            if entry.keys is not None and (
                not refresh or now - entry.fetched_at < JWKS_REFRESH_INTERVAL
            ):
                return entry.keys
            entry.keys = await self._load(entry.config)
            entry.fetched_at = now
            return entry.keys

    async def _load(self, config: IssuerConfig) -> KeySet:
        try:
            if config.jwks_file is not None:
                data = orjson.loads(config.jwks_file.read_bytes())
            else:
                assert config.jwks_url is not None
                response = await self._client.get(config.jwks_url, timeout=5.0)
                response.raise_for_status()
                data = orjson.loads(response.content)
            return KeySet.import_key_set(data)
        except (OSError, ValueError, httpx.HTTPError, JoseError) as exc:
            # Without keys nothing can be verified: an outage, not the client's fault.
            raise ServiceUnavailable("the token issuer's keys are unavailable") from exc

    async def verify(self, token: str) -> dict[str, Any]:
        """Return the verified claims, or raise :class:`Unauthorized`."""
        digest = hashlib.sha256(token.encode()).digest()
        known = self._verified.get(digest)
        if known is not None:
            if time.time() < known[1]:
                return dict(known[0])
            self._verified.discard(digest)
        claims = await self._verify(token)
        expires = claims.get("exp")
        if isinstance(expires, int | float):
            self._verified.put(digest, (dict(claims), float(expires)), 1)
        return claims

    async def _verify(self, token: str) -> dict[str, Any]:
        try:
            issuer = _unverified_claims(token).get("iss")
            entry = self._issuers.get(issuer) if isinstance(issuer, str) else None
            if entry is None:
                raise InvalidToken("untrusted issuer")
            keys = await self._keys(entry)
            try:
                decoded = jwt.decode(token, keys, algorithms=list(entry.config.algorithms))
            except JoseError as exc:
                if "kid" not in str(exc).lower() and "key" not in str(exc).lower():
                    raise
                # An unknown key id may mean the issuer rotated keys: refetch once.
                decoded = jwt.decode(
                    token,
                    await self._keys(entry, refresh=True),
                    algorithms=list(entry.config.algorithms),
                )
            registry = jwt.JWTClaimsRegistry(
                leeway=LEEWAY,
                iss={"essential": True, "value": entry.config.issuer},
                aud={"essential": True, "value": entry.config.audience},
                exp={"essential": True},
            )
            registry.validate(decoded.claims)
            return dict(decoded.claims)
        except (InvalidToken, JoseError, ValueError, TypeError) as exc:
            raise Unauthorized("the bearer token is not valid") from exc

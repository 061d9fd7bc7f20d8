"""What the development authorization server knows: its clients (from the configuration),
who logged in, and the codes and refresh tokens it issued (in memory, on its clock).

Scopes are never widened: a token holds only scopes the client registered and asked for
(a narrower SMART resource scope, such as ``patient/Observation.rs`` under a registered
``patient/*.rs``, counts as registered), and of the resource scopes only those of the
logged-in person's own context (a citizen ``patient/``, a clinician ``user/``).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from authlib.oauth2.rfc6749 import ClientMixin
from joserfc.jwk import KeySet

from gateway.trust_config import OAuthClientConfig

#: An authorization code is good for this long, and once (seconds).
CODE_LIFETIME = 60
#: An access token's lifetime (seconds).
ACCESS_LIFETIME = 3600
#: A refresh token's lifetime (seconds); each use replaces it with a new one.
REFRESH_LIFETIME = 8 * 3600

_RESOURCE_SCOPE = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]+)\.([cruds]+)$")


def _within(asked: str, registered: str) -> bool:
    """Whether scope ``asked`` grants no more than scope ``registered``."""
    if asked == registered:
        return True
    mine, theirs = _RESOURCE_SCOPE.match(asked), _RESOURCE_SCOPE.match(registered)
    if mine is None or theirs is None or mine.group(1) != theirs.group(1):
        return False
    same_type = theirs.group(2) in {"*", mine.group(2)}
    return same_type and set(mine.group(3)) <= set(theirs.group(3))


def narrow(asked: Iterable[str], registered: Iterable[str]) -> list[str]:
    """The asked scopes the registered ones cover, in the order asked, each once."""
    allowed = tuple(registered)
    kept: list[str] = []
    for scope in asked:
        if scope not in kept and any(_within(scope, mine) for mine in allowed):
            kept.append(scope)
    return kept


class Client(ClientMixin):  # type: ignore[misc]
    """A registered client, as authlib asks about it."""

    def __init__(self, config: OAuthClientConfig) -> None:
        self.config = config
        self.client_id = config.client_id
        self.keys: KeySet | None = None
        if config.jwks_file is not None:
            self.keys = KeySet.import_key_set(orjson.loads(config.jwks_file.read_bytes()))

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None  # a redirect_uri must always be sent, and match exactly

    def get_allowed_scope(self, scope: str | None) -> str | None:
        """The asked scopes this client registered; None (``invalid_scope``) when none of
        them is."""
        if not scope:
            return ""
        return " ".join(narrow(scope.split(), self.config.scopes)) or None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.config.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return False  # no shared secrets: public apps use PKCE, backends private_key_jwt

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == ("private_key_jwt" if self.config.backend else "none")

    def check_response_type(self, response_type: str) -> bool:
        return not self.config.backend and response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        if self.config.backend:
            return grant_type == "client_credentials"
        return grant_type in {"authorization_code", "refresh_token"}


@dataclass(frozen=True, slots=True)
class Identity:
    """Who logged in: the claims the gateway maps to a principal, and their context."""

    #: ``citizen`` or ``clinician``.
    kind: str
    #: ``personnummer``, or ``hsa_id``, ``care_unit_hsa_id`` and ``care_provider_hsa_id``.
    claims: dict[str, str]
    #: The token's ``sub``: the citizen's unified patient id, or the clinician's HSA-id.
    subject: str
    #: The citizen's unified patient id (the ``patient`` launch context).
    patient_id: str | None = None
    #: The OpenID Connect ``nonce`` of the authorization request that logged them in.
    nonce: str | None = None

    @property
    def context(self) -> str:
        """The SMART scope context of this person's resource scopes."""
        return "patient" if self.kind == "citizen" else "user"

    def own_scopes(self, scopes: Iterable[str]) -> list[str]:
        """``scopes`` without the resource scopes of another context."""
        return [s for s in scopes if "/" not in s or s.split("/", 1)[0] in {self.context, "launch"}]


@dataclass(slots=True)
class IssuedCode:
    client_id: str
    redirect_uri: str
    scope: str
    identity: Identity
    code_challenge: str
    code_challenge_method: str
    expires_at: float

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass(slots=True)
class IssuedRefresh:
    client_id: str
    scope: str
    identity: Identity
    expires_at: float
    #: The login it descends from: reusing a replaced token ends the whole family.
    family: str

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


@dataclass
class Ledger:
    """The codes, refresh tokens and client-assertion ids issued, in memory; the expired
    are dropped as new ones arrive."""

    clock: Callable[[], float] = time.time
    codes: dict[bytes, IssuedCode] = field(default_factory=dict)
    refresh: dict[bytes, IssuedRefresh] = field(default_factory=dict)
    #: Replaced refresh tokens, until they would have expired: their family.
    replaced: dict[bytes, tuple[str, float]] = field(default_factory=dict)
    assertions: dict[str, float] = field(default_factory=dict)

    def _purge(self) -> None:
        now = self.clock()
        for table in (self.codes, self.refresh):
            for key in [k for k, v in table.items() if v.expires_at <= now]:
                del table[key]
        for key in [k for k, (_, until) in self.replaced.items() if until <= now]:
            del self.replaced[key]
        for jti in [k for k, until in self.assertions.items() if until <= now]:
            del self.assertions[jti]

    def add_code(self, code: str, issued: IssuedCode) -> None:
        self._purge()
        self.codes[_digest(code)] = issued

    def take_code(self, code: str, client_id: str) -> IssuedCode | None:
        """The code's grant, once: a code presented is spent, whatever happens next."""
        issued = self.codes.pop(_digest(code), None)
        if issued is None or issued.client_id != client_id or issued.expires_at <= self.clock():
            return None
        return issued

    def add_refresh(self, token: str, issued: IssuedRefresh) -> None:
        self._purge()
        self.refresh[_digest(token)] = issued

    def find_refresh(self, token: str) -> IssuedRefresh | None:
        """A live refresh token's grant; a replaced one presented again revokes its family."""
        key = _digest(token)
        issued = self.refresh.get(key)
        if issued is not None and issued.expires_at > self.clock():
            return issued
        family = self.replaced.get(key)
        if family is not None:
            self.revoke_family(family[0])
        return None

    def replace_refresh(self, issued: IssuedRefresh) -> None:
        for key, value in list(self.refresh.items()):
            if value is issued:
                del self.refresh[key]
                self.replaced[key] = (issued.family, issued.expires_at)

    def revoke_family(self, family: str) -> None:
        for key in [k for k, v in self.refresh.items() if v.family == family]:
            del self.refresh[key]

    def first_use_of_assertion(self, jti: str, expires: Any) -> bool:
        """Whether a client assertion's ``jti`` is new (then remembered until it expires)."""
        self._purge()
        if jti in self.assertions:
            return False
        until = float(expires) if isinstance(expires, int | float) else self.clock() + 300
        self.assertions[jti] = until
        return True


def new_family() -> str:
    return secrets.token_urlsafe(16)

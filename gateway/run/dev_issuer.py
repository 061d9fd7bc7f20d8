"""The local development token issuer: a signing key in the data folder, for demos only.

Production trusts real issuers (BankID/Freja via OIDC, SITHS, SMART Backend Services);
this one exists so the demo and the tests can mint tokens. Settings refuse to trust it
outside dev mode.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from gateway.settings import ConfigError, Settings
from gateway.trust_config import IssuerConfig

ALGORITHM = "ES256"


class DevIssuer:
    """Keys and token minting for the local development issuer."""

    def __init__(self, folder: Path, issuer: str, audience: str) -> None:
        self.folder = folder
        self.issuer = issuer
        self.audience = audience

    @property
    def private_key_file(self) -> Path:
        return self.folder / "signing-key.jwk.json"

    @property
    def jwks_file(self) -> Path:
        return self.folder / "jwks.json"

    def ensure_keys(self) -> None:
        """Create the key pair once; later runs reuse it so old tokens stay valid."""
        if self.private_key_file.exists() and self.jwks_file.exists():
            return
        create_key_pair(self.private_key_file, self.jwks_file)

    def config(self) -> IssuerConfig:
        return IssuerConfig(
            issuer=self.issuer,
            audience=self.audience,
            jwks_file=self.jwks_file,
            algorithms=(ALGORITHM,),
            dev_signing_key_file=self.private_key_file,
        )


def create_key_pair(private_key_file: Path, jwks_file: Path) -> None:
    """Write a new signing key (readable by its owner only) and the JWKS that verifies it."""
    for folder in {private_key_file.parent, jwks_file.parent}:
        folder.mkdir(parents=True, exist_ok=True)
    key = ECKey.generate_key("P-256", parameters={"kid": uuid.uuid4().hex, "use": "sig"})
    private_key_file.write_bytes(orjson.dumps(key.as_dict(private=True)))
    private_key_file.chmod(0o600)
    public = {"keys": [key.as_dict(private=False) | {"alg": ALGORITHM}]}
    jwks_file.write_bytes(orjson.dumps(public))


def ensure_configured_keys(config: IssuerConfig) -> None:
    """Create the key pair a configured development issuer names when neither file exists
    yet, so that a configuration written by hand needs no keys made beforehand; existing
    files are left as they are."""
    key_file, jwks_file = config.dev_signing_key_file, config.jwks_file
    if key_file is None or jwks_file is None:
        return
    if not key_file.exists() and not jwks_file.exists():
        create_key_pair(key_file, jwks_file)


def mint(
    config: IssuerConfig, claims: dict[str, Any], *, lifetime: int = 3600, now: float | None = None
) -> str:
    """Sign a token with the development issuer described by ``config``, issued at ``now``
    (default: the current time)."""
    if config.dev_signing_key_file is None:
        raise ValueError("not a development issuer: it has no local signing key")
    key = ECKey.import_key(orjson.loads(config.dev_signing_key_file.read_bytes()))
    now = int(time.time() if now is None else now)
    payload = {
        "iss": config.issuer,
        "aud": config.audience,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
        **claims,
    }
    header = {"alg": ALGORITHM, "typ": "JWT", "kid": key.kid}
    return jwt.encode(header, payload, key, algorithms=[ALGORITHM])


def dev_token(settings: Settings, claims: dict[str, Any], lifetime: int = 8 * 3600) -> str:
    """A token from the first development issuer (its key pair made if it has none yet);
    refuses any other configuration, saying what it lacks."""
    if not settings.dev_mode:
        raise ConfigError("refusing: this configuration is not in dev mode (dev_mode = true)")
    issuers = [i for i in settings.issuers if i.dev_signing_key_file is not None]
    if not issuers:
        raise ConfigError(
            "refusing: this configuration trusts no local development issuer (an [[issuers]] "
            "entry with dev_signing_key_file, see docs/configuration.md)"
        )
    issuer = issuers[0]
    try:
        ensure_configured_keys(issuer)
        return mint(issuer, claims, lifetime=lifetime)
    except OSError as exc:
        raise ConfigError(
            f"cannot use the development issuer's keys: {exc.strerror or exc}: {exc.filename}"
        ) from exc
    except (ValueError, JoseError) as exc:
        # The key material stays out of the message; the cause is chained only.
        raise ConfigError(
            f"dev_signing_key_file {issuer.dev_signing_key_file} is not an {ALGORITHM} "
            "private key in JWK form"
        ) from exc

"""Fixtures shared by the whole suite: databases, simulated regions, a token issuer.

Every database test runs twice, on SQLite and on PostgreSQL. The PostgreSQL database is
created fresh for the test session (from ``SAMLAD_TEST_POSTGRES_URL``, default the local
``test`` database) and dropped at the end; tables are emptied between tests.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from hypothesis import settings as hypothesis_settings
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from gateway.trust_config import IssuerConfig
from store.migrate import upgrade

# Hypothesis's per-example deadline measures the machine's speed, not the code's
# behaviour: a loaded machine would fail correct tests.
hypothesis_settings.register_profile("samlad", deadline=None)
hypothesis_settings.load_profile("samlad")

ADMIN_POSTGRES_URL = os.environ.get(
    "SAMLAD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
TEST_ISSUER = "https://idp.test.example/realms/samlad"
TEST_AUDIENCE = "https://samlad.test.example/fhir"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated to head."""
    name = f"samlad_test_{uuid.uuid4().hex[:12]}"
    admin = make_url(ADMIN_POSTGRES_URL)
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database: SQLite in a temporary folder, or the session's PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'samlad.db'}"
        upgrade(url)
        yield url
        return
    url = request.getfixturevalue("postgres_url")
    yield url
    engine = create_engine(make_url(url).set(drivername="postgresql+psycopg"))
    with engine.begin() as conn:
        tables = conn.execute(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename <> 'alembic_version'"
            )
        ).scalars()
        conn.execute(text(f"TRUNCATE {', '.join(tables)}"))
    engine.dispose()


@dataclass
class IssuerKit:
    """A trusted issuer whose private key the tests hold."""

    key: RSAKey
    config: IssuerConfig

    def token(
        self,
        claims: dict[str, Any] | None = None,
        *,
        header: dict[str, Any] | None = None,
        key: RSAKey | None = None,
        lifetime: int = 300,
    ) -> str:
        now = int(time.time())
        payload = {
            "iss": self.config.issuer,
            "aud": self.config.audience,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
        }
        payload.update(claims or {})
        signing_key = key or self.key
        head = {"alg": "RS256", "kid": signing_key.kid, **(header or {})}
        return jwt.encode(head, payload, signing_key, algorithms=["RS256"])

    def citizen(self, personnummer: str, **claims: Any) -> str:
        return self.token({"personnummer": personnummer, "scope": "patient/*.rs", **claims})


@pytest.fixture(scope="session")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> IssuerKit:
    folder = tmp_path_factory.mktemp("issuer")
    key = RSAKey.generate_key(2048, parameters={"kid": "test-key-1"})
    jwks = folder / "jwks.json"
    jwks.write_bytes(orjson.dumps({"keys": [key.as_dict(private=False)]}))
    config = IssuerConfig(issuer=TEST_ISSUER, audience=TEST_AUDIENCE, jwks_file=jwks)
    return IssuerKit(key, config)


# -- lines printed at the end of the run ------------------------------------------------

#: Where a worker process (pytest-xdist) hands its lines to the process that reports.
_REPORTED = "samlad_reported"
_REPORTED_KEY = pytest.StashKey[list[str]]()


def report_at_the_end(config: pytest.Config, text: str) -> None:
    """Print ``text`` in the run's summary (the fuzz tally, say), from this process or,
    under pytest-xdist, from the worker that made it."""
    output = getattr(config, "workeroutput", None)
    if output is not None:
        output[_REPORTED] = [*output.get(_REPORTED, []), text]
    else:
        config.stash.setdefault(_REPORTED_KEY, []).append(text)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """A worker's lines, taken over as it ends."""
    lines = node.workeroutput.get(_REPORTED, [])
    node.config.stash.setdefault(_REPORTED_KEY, []).extend(lines)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    for lines in config.stash.get(_REPORTED_KEY, []):
        terminalreporter.write_line(lines)

"""The gateway against the three simulated regions, served as real HTTP servers on loopback."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import orjson
import pytest

from consent.scopes import CITIZEN_SCOPE
from gateway.run.app import create_app
from gateway.run.demo import DEMO_SOURCE_TIMEOUT, region_source
from gateway.settings import Settings, load_settings
from simregions.app import create_app as create_region_app
from simregions.behaviour import Behaviour
from simregions.mailsink import MailSink
from simregions.people import relations
from simregions.regions import DEFAULT_REGIONS, RegionSpec
from simregions.server import RunningServer, start_in_thread
from store.db import Database
from tests.conftest import IssuerKit

TEST_PERSON = "191212121212"
#: Guardian relations of the simulated population, plus one whose "child" is 18.
GUARDIAN = "198107281563"
CHILD = "201605121936"  # born 2016: under 13
GROWN_CHILD = "200808074447"  # born 2008: 13 or older, the guardian may no longer read
#: An adult the test person may make their proxy (no relation to anyone).
PROXY = "197904105082"
#: A legal representative (god man) and the adult they represent, from the register.
REPRESENTATIVE, REPRESENTED = "196707195290", "194003029818"
NORD_PROVIDER = "SE2321009001-NORD"
FHIR_BASE = "http://gateway.test/fhir"


@dataclass
class Region:
    spec: RegionSpec
    behaviour: Behaviour
    server: RunningServer

    @property
    def source_id(self) -> str:
        return f"region-{self.spec.id}"

    @property
    def base_url(self) -> str:
        return self.server.url + "/fhir"


@pytest.fixture(scope="session")
def regions() -> Iterator[dict[str, Region]]:
    """The three default regions, each on its own loopback port, for the whole session."""
    started: dict[str, Region] = {}
    try:
        for spec in DEFAULT_REGIONS:
            behaviour = Behaviour()
            server = start_in_thread(create_region_app(spec, behaviour))
            started[spec.id] = Region(spec, behaviour, server)
        yield started
    finally:
        for region in started.values():
            region.server.stop()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """The migrated database of ``database_url``, as the gateway opens it."""
    database = Database(database_url)
    yield database
    await database.dispose()


@pytest.fixture(autouse=True)
def _healthy_regions(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tests that change a region's behaviour get it back healthy afterwards."""
    yield
    if "regions" in request.fixturenames:
        for region in request.getfixturevalue("regions").values():
            region.behaviour.latency_ms = 0
            region.behaviour.fault = "none"
            region.behaviour.fault_rate = 1.0
            region.behaviour.fault_paths = ""


def gateway_settings(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region], **overrides: Any
) -> Settings:
    sources = [region_source(r.spec, r.base_url) for r in regions.values()]
    sources += [dict(source) for source in overrides.pop("extra_sources", [])]
    # Generous by default, so that every source answers in full on a busy machine; the
    # tests of timeouts and late sources set both themselves (an extra source keeps a
    # timeout of its own, other than the demo's).
    timeout = overrides.pop("source_timeout", 60.0)
    for source in sources:
        if source.get("timeout", DEMO_SOURCE_TIMEOUT) == DEMO_SOURCE_TIMEOUT:
            source["timeout"] = timeout
    values: dict[str, Any] = {
        "dev_mode": False,
        "id_key": "test-id-key-0123456789",
        "data_key": "test-data-key-0123456789",
        "audit_checkpoint_key": "a1" * 32,
        # Each gateway its own checkpoint file, not one in the working directory.
        "audit_checkpoint_file": Path(tempfile.mkdtemp(prefix="samlad-test-")) / "cp.jsonl",
        "database_url": database_url,
        "public_base_url": FHIR_BASE.removesuffix("/fhir"),
        "issuers": [issuer.config],
        "sources": sources,
        "request_deadline": 120.0,
    }
    values.update(overrides)
    return load_settings(None, **values)


@dataclass
class Gateway:
    client: httpx.AsyncClient
    issuer: IssuerKit
    regions: dict[str, Region]
    settings: Settings
    #: The app in process (its ``state.services`` for a test to set the decisions' clock).
    app: Any = None
    #: The app's long-lived parts (``services.clock`` moves the time access is decided at).
    services: Any = None

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def citizen(
        self, personnummer: str = TEST_PERSON, scope: str = CITIZEN_SCOPE
    ) -> dict[str, str]:
        return self.auth(self.issuer.citizen(personnummer, scope=scope))

    def clinician(
        self,
        unit: str = "SE2321009001-MEDM",
        provider: str = NORD_PROVIDER,
        hsa_id: str = "SE2321009001-DOC1",
        scope: str = "user/*.rs",
    ) -> dict[str, str]:
        claims = {
            "hsa_id": hsa_id,
            "care_unit_hsa_id": unit,
            "care_provider_hsa_id": provider,
            "scope": scope,
        }
        return self.auth(self.issuer.token(claims))

    def integrator(
        self, provider: str = NORD_PROVIDER, scope: str = "system/*.rs"
    ) -> dict[str, str]:
        claims = {"client_id": "journal-app", "care_provider_hsa_id": provider, "scope": scope}
        return self.auth(self.issuer.token(claims))

    async def patient_id(
        self, personnummer: str = TEST_PERSON, *, asking: str | None = None
    ) -> str:
        """The person's unified id, looked up as themselves (or as ``asking``, say the
        guardian of a child too young to read their own record)."""
        response = await self.client.post(
            "/fhir/Patient/_search",
            data={
                "identifier": f"http://electronichealth.se/identifier/personnummer|{personnummer}"
            },
            headers=self.citizen(asking or personnummer),
        )
        assert response.status_code == 200, response.text
        patients = [
            e["resource"]
            for e in response.json()["entry"]
            if e["resource"]["resourceType"] == "Patient"
        ]
        assert len(patients) == 1
        return str(patients[0]["id"])


@asynccontextmanager
async def running_gateway(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region], **overrides: Any
) -> AsyncIterator[Gateway]:
    """The gateway app in process (with its lifespan), talking to the real regions."""
    settings = gateway_settings(database_url, issuer, regions, **overrides)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            yield Gateway(client, issuer, regions, settings, app, app.state.services)


@pytest.fixture(scope="session")
def guardian_register(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A register file in the form the regions serve at /_sim/relations."""
    pairs = [*relations(), (GUARDIAN, GROWN_CHILD)]
    document = {
        "relations": [
            {
                "relationship": "guardian",
                "guardian": {"personnummer": guardian},
                "child": {"personnummer": child},
            }
            for guardian, child in pairs
        ]
        + [
            {
                "relationship": "legal-representative",
                "representative": {"personnummer": REPRESENTATIVE},
                "represented": {"personnummer": REPRESENTED},
            }
        ]
    }
    path = tmp_path_factory.mktemp("register") / "relations.json"
    path.write_bytes(orjson.dumps(document))
    return path


@pytest.fixture
async def gateway(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region], guardian_register: Path
) -> AsyncIterator[Gateway]:
    async with running_gateway(
        database_url, issuer, regions, guardian_registers=[{"file": str(guardian_register)}]
    ) as running:
        yield running


@pytest.fixture
async def unlimited_gateway(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region], guardian_register: Path
) -> AsyncIterator[Gateway]:
    """The usual gateway without rate limits: for a test that reads every resource of a
    record one by one."""
    async with running_gateway(
        database_url,
        issuer,
        regions,
        guardian_registers=[{"file": str(guardian_register)}],
        rate_limit_enabled=False,
    ) as running:
        yield running


async def every_entry(
    gateway: Gateway, path: str, headers: dict[str, str], limit: int = 200
) -> list[dict[str, Any]]:
    """Every entry of a searchset (matches, includes and outcomes) at ``path``, following
    its ``next`` links to the end."""
    response = await gateway.client.get(path, headers=headers)
    entries: list[dict[str, Any]] = []
    for _ in range(limit):
        assert response.status_code == 200, response.text
        bundle = response.json()
        entries += bundle["entry"]
        following = [link["url"] for link in bundle.get("link", []) if link["relation"] == "next"]
        if not following:
            return entries
        assert following[0].startswith(FHIR_BASE)
        response = await gateway.client.get(
            following[0].removeprefix(FHIR_BASE.removesuffix("/fhir")), headers=headers
        )
    raise AssertionError("paging did not end")


async def follow_pages(
    gateway: Gateway, first: dict[str, Any], headers: dict[str, str], limit: int = 200
) -> list[dict[str, Any]]:
    """Every match of a searchset, following ``next`` links (as given) to the end."""
    bundle, matches = first, []
    for _ in range(limit):
        matches += [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "match"]
        following = [link["url"] for link in bundle.get("link", []) if link["relation"] == "next"]
        if not following:
            return matches
        assert following[0].startswith(FHIR_BASE)
        response = await gateway.client.get(
            following[0].removeprefix(FHIR_BASE.removesuffix("/fhir")), headers=headers
        )
        assert response.status_code == 200, response.text
        bundle = response.json()
    raise AssertionError("paging did not end")


@pytest.fixture
async def sink() -> AsyncIterator[MailSink]:
    """An SMTP server on loopback that keeps every message it is sent."""
    server = await MailSink().start()
    yield server
    await server.close()


@pytest.fixture
def made_files(monkeypatch: pytest.MonkeyPatch) -> list[IO[bytes]]:
    """Every temporary file made while the test runs, as made (real files)."""
    made: list[IO[bytes]] = []
    real = tempfile.TemporaryFile

    def temporary_file(**options: Any) -> IO[bytes]:
        file: IO[bytes] = real(**options)
        made.append(file)
        return file

    monkeypatch.setattr(tempfile, "TemporaryFile", temporary_file)
    return made

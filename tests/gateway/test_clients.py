"""Real FHIR clients (fhirpy, fhirclient) against the gateway served over real HTTP.

The gateway runs as a uvicorn server on loopback with ``public_base_url`` set to its own
address, so the absolute ``next`` links it writes are the ones the clients follow. An
integrator of Region Nord reads the test person's record on the strength of a consent the
person granted; what each client reads must equal what plain HTTP requests read.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import httpx
import orjson
import pytest
from fhirclient import client as fhirclient_client
from fhirclient.models.observation import Observation as FCObservation
from fhirclient.models.patient import Patient as FCPatient
from fhirpy import AsyncFHIRClient
from fhirpy.base.exceptions import ForbiddenError

from gateway.run.app import create_app
from simregions.server import LOOPBACK, RunningServer, start_in_thread
from store.migrate import upgrade
from tests.conftest import IssuerKit
from tests.gateway.conftest import (
    CITIZEN_SCOPE,
    NORD_PROVIDER,
    TEST_PERSON,
    Region,
    gateway_settings,
)
from tests.gateway.consent_helpers import consent_body

PERSONNUMMER = "http://electronichealth.se/identifier/personnummer"
LOINC_HB = "http://loinc.org|718-7"
NPU_HB = "NPU28309"
STOCKHOLM = ZoneInfo("Europe/Stockholm")


@dataclass
class ServedGateway:
    """The gateway on a loopback port, with the test person's id and consent in place."""

    server: RunningServer
    base: str  # .../fhir
    issuer: IssuerKit
    patient_id: str

    def citizen_token(self, personnummer: str = TEST_PERSON) -> str:
        return self.issuer.citizen(personnummer, scope=CITIZEN_SCOPE)

    def integrator_token(self, provider: str = NORD_PROVIDER) -> str:
        claims = {"client_id": "journal-app", "care_provider_hsa_id": provider}
        return self.issuer.token({**claims, "scope": "system/*.rs"}, lifetime=600)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def serve_gateway(
    tmp: Path, issuer: IssuerKit, regions: dict[str, Region], **overrides: Any
) -> tuple[RunningServer, str]:
    """Start the gateway (SQLite in ``tmp``) on a free loopback port that it knows as its own."""
    database_url = f"sqlite:///{tmp / 'samlad.db'}"
    upgrade(database_url)
    port = free_port()
    public = f"http://{LOOPBACK}:{port}"
    overrides.setdefault("rate_limit_enabled", False)  # one principal at fuzzing speed
    settings = gateway_settings(database_url, issuer, regions, public_base_url=public, **overrides)
    server = start_in_thread(create_app(settings), port=port)
    assert server.url == public
    return server, f"{public}/fhir"


def find_patient(base: str, token: str, personnummer: str = TEST_PERSON) -> str:
    response = httpx.post(
        f"{base}/Patient/_search",
        data={"identifier": f"{PERSONNUMMER}|{personnummer}"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    patients = [
        e["resource"]["id"]
        for e in response.json()["entry"]
        if e["resource"]["resourceType"] == "Patient"
    ]
    assert len(patients) == 1
    return str(patients[0])


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, issuer: IssuerKit, regions: dict[str, Region]
) -> Iterator[ServedGateway]:
    server, base = serve_gateway(tmp_path_factory.mktemp("clients"), issuer, regions)
    try:
        patient_id, _ = consent_to_nord(base, issuer)
        yield ServedGateway(server, base, issuer, patient_id)
    finally:
        server.stop()


def consent_to_nord(base: str, issuer: IssuerKit) -> tuple[str, str]:
    """As the test person: find the unified id and consent to Region Nord's provider."""
    citizen = issuer.citizen(TEST_PERSON, scope=CITIZEN_SCOPE)
    patient_id = find_patient(base, citizen)
    granted = httpx.post(
        f"{base}/Consent",
        json=consent_body(patient_id, NORD_PROVIDER),
        headers={"Authorization": f"Bearer {citizen}"},
        timeout=30,
    )
    assert granted.status_code == 201, granted.text
    return patient_id, str(granted.json()["id"])


def raw_search(
    gateway: ServedGateway, token: str, resource_type: str, params: list[tuple[str, str]]
) -> tuple[list[str], int]:
    """Ids of every match, following the absolute ``next`` links as given; and ``total``."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
    ids: list[str] = []
    with httpx.Client(headers=headers, timeout=30) as http:
        response = http.get(f"{gateway.base}/{resource_type}", params=params)
        total: int | None = None
        for _ in range(500):
            assert response.status_code == 200, response.text
            assert response.headers["content-type"].startswith("application/fhir+json")
            bundle = response.json()
            total = bundle["total"] if total is None else total
            assert bundle["total"] == total
            ids += [e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "match"]
            following = [x["url"] for x in bundle.get("link", []) if x["relation"] == "next"]
            if not following:
                assert total is not None
                return ids, total
            assert following[0].startswith(gateway.base + "?")
            response = http.get(following[0])
    raise AssertionError("paging did not end")


async def fhirpy_ids(
    gateway: ServedGateway, token: str, resource_type: str, **params: Any
) -> list[str]:
    client = AsyncFHIRClient(gateway.base, authorization=f"Bearer {token}")
    found = await client.resources(resource_type).search(**params).limit(10).fetch_all()
    return [str(resource["id"]) for resource in found]


@pytest.fixture(scope="module")
def all_observations(served: ServedGateway) -> tuple[list[str], int]:
    """The reference: every Observation id read with plain HTTP, following the links."""
    return raw_search(
        served,
        served.integrator_token(),
        "Observation",
        [("patient", served.patient_id), ("_count", "50")],
    )


# -- fhirpy (async, aiohttp) ---------------------------------------------------------------


@pytest.mark.anyio
async def test_fhirpy_fetch_all_follows_next_links_to_the_end(
    served: ServedGateway, all_observations: tuple[list[str], int]
) -> None:
    token = served.integrator_token()
    ids = await fhirpy_ids(served, token, "Observation", patient=served.patient_id)
    raw, total = all_observations
    assert total > 100, "the test person should have many pages of Observations"
    # Pages of 10 (fhirpy) and of 50 (raw) read the same results in the same order.
    assert ids == raw
    assert len(ids) == len(set(ids)) == total


@pytest.mark.anyio
async def test_fhirpy_code_search_loinc_and_npu_agree(served: ServedGateway) -> None:
    token = served.integrator_token()
    by_loinc = await fhirpy_ids(
        served, token, "Observation", patient=served.patient_id, code=LOINC_HB
    )
    by_npu = await fhirpy_ids(served, token, "Observation", patient=served.patient_id, code=NPU_HB)
    raw, total = await anyio.to_thread.run_sync(
        raw_search,
        served,
        token,
        "Observation",
        [("patient", served.patient_id), ("code", LOINC_HB), ("_count", "50")],
    )
    assert by_loinc, "the test person has haemoglobin results"
    assert sorted(by_loinc) == sorted(by_npu)
    assert by_loinc == raw
    assert len(by_loinc) == total


def stockholm_day(value: str) -> str:
    """The Swedish calendar day of a FHIR dateTime (no offset means Swedish local time)."""
    if len(value) <= 10:
        return value
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is not None:
        moment = moment.astimezone(STOCKHOLM)
    return moment.date().isoformat()


@pytest.mark.anyio
async def test_fhirpy_date_range(served: ServedGateway) -> None:
    token = served.integrator_token()
    client = AsyncFHIRClient(served.base, authorization=f"Bearer {token}")
    everything = (
        await client.resources("Observation")
        .search(patient=served.patient_id)
        .limit(1000)
        .fetch_all()
    )
    days = {str(o["id"]): stockholm_day(str(o["effectiveDateTime"])) for o in everything}
    ordered = sorted(days.values())
    assert len(set(ordered)) >= 3, "need observations on several days"
    low, high = ordered[len(ordered) * 4 // 10], ordered[len(ordered) * 6 // 10]
    assert low < high
    # fhirpy writes a prefixed value as ``name__prefix``: date=ge... and date=lt...
    ranged = await fhirpy_ids(
        served, token, "Observation", patient=served.patient_id, date__ge=low, date__lt=high
    )
    raw, total = await anyio.to_thread.run_sync(
        raw_search,
        served,
        token,
        "Observation",
        [
            ("patient", served.patient_id),
            ("date", f"ge{low}"),
            ("date", f"lt{high}"),
            ("_count", "50"),
        ],
    )
    assert ranged == raw
    assert len(ranged) == total
    assert set(ranged) == {i for i, day in days.items() if low <= day < high}
    assert 0 < total < len(everything)


@pytest.mark.anyio
async def test_fhirpy_without_consent_is_forbidden(served: ServedGateway) -> None:
    """A provider the person gave no consent to: fhirpy sees the 403 as ForbiddenError."""
    token = served.integrator_token(provider="SE2321000032-SYD")
    client = AsyncFHIRClient(served.base, authorization=f"Bearer {token}")
    with pytest.raises(ForbiddenError) as caught:
        await client.resources("Observation").search(patient=served.patient_id).fetch()
    outcome = orjson.loads(str(caught.value))
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "forbidden"


# -- fhirclient (sync, requests) -------------------------------------------------------------


def fhirclient_for(gateway: ServedGateway, token: str) -> fhirclient_client.FHIRClient:
    smart = fhirclient_client.FHIRClient(
        settings={"app_id": "samlad-test", "api_base": gateway.base}
    )
    smart.server.session.headers["Authorization"] = f"Bearer {token}"
    return smart


def test_fhirclient_search_and_read(
    served: ServedGateway, all_observations: tuple[list[str], int]
) -> None:
    token = served.integrator_token()
    smart = fhirclient_for(served, token)
    search = FCObservation.where(struct={"patient": served.patient_id, "_count": "25"})
    observations = [
        r for r in search.perform_resources_iter(smart.server) if r.resource_type == "Observation"
    ]
    raw, total = all_observations
    assert [o.id for o in observations] == raw
    assert len(observations) == total

    patient = FCPatient.read(served.patient_id, smart.server)
    response = httpx.get(
        f"{served.base}/Patient/{served.patient_id}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert patient.as_json() == response.json()

"""Standard SMART client libraries log in against the gateway, served by a real uvicorn on
loopback. fhirclient (Python, 4.4.0) and fhir-kit-client (JavaScript, run by Node.js from
tests/js) each find the OAuth endpoints themselves, send the person to log in, exchange
the code with PKCE and read with the token they got; the person's part, the login and
consent pages, is filled in as a person would (httpx)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fhirclient.client import FHIRClient
from fhirclient.models.observation import Observation

from tests.conftest import IssuerKit
from tests.gateway.conftest import Region
from tests.gateway.smart_helpers import (
    APP,
    Served,
    fhir_kit_client_login,
    log_in_by_browser,
    served_dev_gateway,
)


@pytest.fixture
def served(tmp_path: Path, issuer: IssuerKit, regions: dict[str, Region]) -> Iterator[Served]:
    with served_dev_gateway(tmp_path, issuer, regions) as served:
        yield served


def test_fhirclient_discovers_the_login_and_completes_it(served: Served) -> None:
    fhir = served.settings.fhir_base_url
    client = FHIRClient(
        settings={
            "app_id": APP,
            "api_base": fhir,
            "redirect_uri": f"{served.public}/app/",
            "scope": "openid fhirUser offline_access patient/*.rs",
        }
    )
    url = client.authorize_url  # from the CapabilityStatement's oauth-uris
    assert url.startswith(f"{served.public}/dev-issuer/authorize?")

    callback = log_in_by_browser(url)
    assert callback.startswith(f"{served.public}/app/?")

    client.handle_callback(callback)  # the code exchange, with fhirclient's PKCE verifier
    assert client.ready
    assert client.server.auth.refresh_token
    # launch/patient was added by fhirclient itself; the context is Tolvan's unified id.
    patient = client.patient
    assert patient is not None
    assert patient.id == client.patient_id
    assert patient.birthDate.isostring == "1912-12-12"
    assert patient.name[0].given == ["Tolvan"]
    search = Observation.where({"patient": client.patient_id, "_count": "5"})
    first = next(search.perform_iter(client.server))
    assert any(entry.resource.resource_type == "Observation" for entry in first.entry)


def test_fhir_kit_client_discovers_the_login_and_completes_it(served: Served) -> None:
    fhir = served.settings.fhir_base_url
    read = fhir_kit_client_login(fhir, APP, f"{served.public}/app/", served.public)
    assert read["refresh"] is True
    assert set(read["scope"].split()) >= {"launch/patient", "patient/*.rs"}
    assert read["patient"]["resourceType"] == "Patient"
    assert read["patient"]["birthDate"] == "1912-12-12"
    assert read["patient"]["name"][0]["given"] == ["Tolvan"]
    assert "Observation" in read["observations"]

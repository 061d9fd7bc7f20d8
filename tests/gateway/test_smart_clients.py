"""Standard SMART client libraries log in against the gateway, served by a real uvicorn on
loopback. fhirclient (Python, 4.4.0) and fhir-kit-client (JavaScript, run by Node.js from
tests/js) each find the OAuth endpoints themselves, send the person to log in, exchange
the code with PKCE and read with the token they got; the person's part, the login and
consent pages, is filled in as a person would (httpx)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fhirclient.client import FHIRClient
from fhirclient.models.observation import Observation

from tests.conftest import IssuerKit
from tests.gateway.conftest import Region
from tests.gateway.smart_helpers import APP, Served, log_in_by_browser, served_dev_gateway

TOOLS = Path(__file__).parents[1] / "js"


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
    node = shutil.which("node")
    assert node is not None, "Node.js runs the JavaScript test tools"
    assert (TOOLS / "node_modules" / "fhir-kit-client").is_dir(), "run make: npm ci in tests/js"
    fhir = served.settings.fhir_base_url
    scope = "openid fhirUser launch/patient offline_access patient/*.rs"
    app = subprocess.Popen(
        [node, str(TOOLS / "smart_login.mjs"), fhir, APP, f"{served.public}/app/", scope],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert app.stdout is not None
        assert app.stdin is not None
        first = app.stdout.readline()
        assert first, app.stderr.read() if app.stderr else "fhir-kit-client printed nothing"
        url = json.loads(first)["authorize"]
        # The endpoint came from the gateway's own discovery, not from this test.
        assert url.startswith(f"{served.public}/dev-issuer/authorize?")
        callback = log_in_by_browser(url)
        out, err = app.communicate(callback + "\n", timeout=60)
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
    assert app.returncode == 0, err
    read = json.loads(out)
    assert read["refresh"] is True
    assert set(read["scope"].split()) >= {"launch/patient", "patient/*.rs"}
    assert read["patient"]["resourceType"] == "Patient"
    assert read["patient"]["birthDate"] == "1912-12-12"
    assert read["patient"]["name"][0]["given"] == ["Tolvan"]
    assert "Observation" in read["observations"]

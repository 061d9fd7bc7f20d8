"""A standard SMART client library logs in against the gateway: fhirclient (4.4.0) finds
the OAuth endpoints in the CapabilityStatement, the login form is filled in as a person
would (httpx), and fhirclient exchanges the code (PKCE) and reads with its token. The
gateway is served by a real uvicorn on loopback: fhirclient speaks real HTTP."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from fhirclient.client import FHIRClient
from fhirclient.models.observation import Observation

from gateway.run.app import create_app
from gateway.settings import Settings
from simregions.server import LOOPBACK, bind_socket, make_server
from tests.conftest import IssuerKit
from tests.gateway.conftest import Region
from tests.gateway.smart_helpers import APP, TOLVAN, dev_gateway_settings, hidden_fields


@dataclass
class Served:
    settings: Settings
    public: str


@pytest.fixture
def served(tmp_path: Path, issuer: IssuerKit, regions: dict[str, Region]) -> Iterator[Served]:
    """The gateway with its development authorization server, on a loopback port."""
    sock = bind_socket(LOOPBACK, 0)
    public = f"http://{LOOPBACK}:{sock.getsockname()[1]}"
    try:
        settings = dev_gateway_settings(tmp_path, issuer, regions, public)
        server = make_server(create_app(settings))
    except BaseException:
        sock.close()
        raise
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])))
    thread.start()
    try:
        for _ in range(1000):
            if server.started:
                break
            assert thread.is_alive(), "the gateway did not start"
            threading.Event().wait(0.01)
        yield Served(settings, public)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


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

    with httpx.Client() as browser:
        page = browser.get(url)
        assert page.status_code == 200, page.text
        form = hidden_fields(page.text) | {"role": "citizen", "person": TOLVAN}
        target = f"{served.public}{urlsplit(url).path}"
        consent = browser.post(target, data=form)
        assert consent.status_code == 200, consent.text
        answer = browser.post(target, data={**hidden_fields(consent.text), "decision": "allow"})
        assert answer.status_code == 302, answer.text
        callback = answer.headers["location"]
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

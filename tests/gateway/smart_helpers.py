"""A gateway with the development authorization server, and a browser's part in its login
(the forms filled in as a person would, with httpx)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import secrets
import shutil
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from gateway.run.app import create_app
from gateway.run.authserver.server import DevAuthorizationServer
from gateway.run.dev_issuer import DevIssuer
from gateway.settings import Settings
from simregions.server import LOOPBACK, bind_socket, make_server
from store.migrate import upgrade
from tests.conftest import IssuerKit
from tests.gateway.conftest import Region, gateway_settings

PUBLIC = "http://127.0.0.1:8000"
FHIR = f"{PUBLIC}/fhir"
APP = "demo-app"
APP_REDIRECT = f"{PUBLIC}/app/"
APP_SCOPES = [
    "openid",
    "fhirUser",
    "launch/patient",
    "offline_access",
    "patient/*.rs",
    "patient/Consent.cu",
    "patient/Observation.cd",
    "patient/QuestionnaireResponse.cd",
    "user/*.rs",
]
TOLVAN = "191212121212"
#: The JavaScript test tools (tests/js, installed by make with npm ci).
JS_TOOLS = Path(__file__).parents[1] / "js"


def pkce() -> tuple[str, str]:
    """A PKCE verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


def dev_gateway_settings(
    folder: Path,
    issuer: IssuerKit,
    regions: dict[str, Region],
    public: str = PUBLIC,
    **overrides: Any,
) -> Settings:
    """Dev mode on SQLite (or the migrated ``database_url`` among ``overrides``), the
    development issuer (of ``public``, the gateway's public base URL) as authorization
    server, one public app."""
    url = overrides.pop("database_url", None)
    if url is None:
        url = f"sqlite:///{folder / 'samlad.db'}"
        upgrade(url)
    dev = DevIssuer(folder / "dev-issuer", f"{public}/dev-issuer", f"{public}/fhir")
    dev.ensure_keys()
    values: dict[str, Any] = {
        "dev_mode": True,
        "public_base_url": public,
        "issuers": [dev.config()],
        "dev_authorization_server": True,
        "oauth_clients": [
            {"client_id": APP, "redirect_uris": [f"{public}/app/"], "scopes": APP_SCOPES}
        ],
    }
    values.update(overrides)
    return gateway_settings(url, issuer, regions, **values)


@dataclass
class DevGateway:
    client: httpx.AsyncClient
    settings: Settings
    server: DevAuthorizationServer
    app: Any = field(repr=False)


@asynccontextmanager
async def dev_gateway(
    folder: Path, issuer: IssuerKit, regions: dict[str, Region], **overrides: Any
) -> AsyncIterator[DevGateway]:
    settings = dev_gateway_settings(folder, issuer, regions, **overrides)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=PUBLIC) as client:
            yield DevGateway(client, settings, app.state.authserver, app)


def authorize_params(challenge: str, **changes: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": APP,
        "redirect_uri": APP_REDIRECT,
        "scope": " ".join(APP_SCOPES),
        "state": "st-" + secrets.token_hex(4),
        "aud": FHIR,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(changes)
    return {key: value for key, value in params.items() if value is not None}


def hidden_fields(html: str) -> dict[str, str]:
    """The hidden inputs of the first form on a page."""
    form = html.split("<form", 2)[1]
    pairs = re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', form)
    return {unescape(name): unescape(value) for name, value in pairs}


async def log_in(
    client: httpx.AsyncClient,
    url: str,
    *,
    person: str | None = TOLVAN,
    clinician: dict[str, str] | None = None,
    decision: str = "allow",
) -> str:
    """Open an authorization URL, log in as ``person`` (or the clinician), answer the
    consent page; the Location the browser is sent to."""
    page = await client.get(url)
    assert page.status_code == 200, page.text
    fields = hidden_fields(page.text)
    if clinician is not None:
        fields |= {"role": "clinician", **clinician}
    else:
        fields |= {"role": "citizen", "person": person or ""}
    consent = await client.post(urlsplit(url).path, data=fields)
    assert consent.status_code == 200, consent.text
    answer = await client.post(
        urlsplit(url).path, data={**hidden_fields(consent.text), "decision": decision}
    )
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


def query_of(location: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


@dataclass
class Served:
    settings: Settings
    public: str


@contextmanager
def served_dev_gateway(
    folder: Path, issuer: IssuerKit, regions: dict[str, Region], **overrides: Any
) -> Iterator[Served]:
    """The gateway with its development authorization server, served by a real uvicorn on
    a loopback port, for clients that speak real HTTP (``overrides``: more settings)."""
    sock = bind_socket(LOOPBACK, 0)
    public = f"http://{LOOPBACK}:{sock.getsockname()[1]}"
    try:
        settings = dev_gateway_settings(folder, issuer, regions, public, **overrides)
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


def log_in_by_browser(url: str, person: str = TOLVAN) -> str:
    """A person's part of a login, over real HTTP: open the authorization URL, log in as
    ``person``, allow; the redirect the browser is sent to."""
    with httpx.Client() as browser:
        page = browser.get(url)
        assert page.status_code == 200, page.text
        form = hidden_fields(page.text) | {"role": "citizen", "person": person}
        target = f"{urlsplit(url).scheme}://{urlsplit(url).netloc}{urlsplit(url).path}"
        consent = browser.post(target, data=form)
        assert consent.status_code == 200, consent.text
        answer = browser.post(target, data={**hidden_fields(consent.text), "decision": "allow"})
        assert answer.status_code == 302, answer.text
        return answer.headers["location"]


def fhir_kit_client_login(fhir: str, client_id: str, redirect_uri: str, public: str) -> Any:
    """fhir-kit-client's part of a standalone launch (tests/js/smart_login.mjs) against
    the FHIR base ``fhir``, Tolvan logging in by browser in between: what it read with
    the token it got (``scope``, ``refresh``, ``patient``, ``observations``). The
    authorization endpoint it found must be the gateway's own (under ``public``)."""
    node = shutil.which("node")
    assert node is not None, "Node.js runs the JavaScript test tools"
    assert (JS_TOOLS / "node_modules" / "fhir-kit-client").is_dir(), "run make: npm ci in tests/js"
    scope = "openid fhirUser launch/patient offline_access patient/*.rs"
    app = subprocess.Popen(
        [node, str(JS_TOOLS / "smart_login.mjs"), fhir, client_id, redirect_uri, scope],
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
        # The endpoint came from the gateway's own discovery, not from the caller.
        assert url.startswith(f"{public}/dev-issuer/authorize?"), url
        callback = log_in_by_browser(url)
        out, err = app.communicate(callback + "\n", timeout=60)
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
    assert app.returncode == 0, err
    return json.loads(out)

"""``samlad demo``: the simulated regions and the gateway in one process, on loopback.

Writes a dev-mode configuration to the data folder (SQLite, the local development
issuer, one source per simulated region and any added with ``--add-sources``), starts
everything, and prints a token and ready-to-paste requests.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import shlex
import shutil
import socket
import sys
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import tomli_w
import uvicorn

from consent.scopes import CITIZEN_SCOPE
from fhir_profiles.coverage import category_of
from fhir_profiles.identifiers import PERSONNUMMER_SYSTEM, parse_person_identifier
from gateway.http.discovery import oauth_endpoints
from gateway.run.app import create_app
from gateway.run.configfile import DEMO_CONFIG, CommandError
from gateway.run.dev_issuer import DevIssuer, dev_token
from gateway.run.workers import forwarded_options
from gateway.settings import Settings, load_settings
from simregions.app import create_app as create_region_app
from simregions.legacy.app import create_legacy_app
from simregions.legacy.spec import OST, LegacyRegionSpec
from simregions.mailsink import MailSink, Received
from simregions.people import DEMO_PROXY_PNR, TEST_PERSON_PNR
from simregions.regions import DEFAULT_REGIONS, RegionSpec
from simregions.server import LOOPBACK, bind_socket, make_server

TEST_PERSON = TEST_PERSON_PNR

#: How the demo's Region Syd differs in what it shares, as real regions do: no lab
#: results, nothing before 2001, and notes only from 2005.
_SYD_SHARES = {
    "withholds_labs": True,
    "shares_from": (("*", date(2001, 1, 1)), ("DocumentReference", date(2005, 1, 1))),
}


def demo_regions() -> tuple[RegionSpec, ...]:
    """The simulated FHIR regions the demo starts: the default ones, Region Syd sharing
    less (:data:`_SYD_SHARES`)."""
    return tuple(
        dataclasses.replace(spec, **_SYD_SHARES) if spec.id == "syd" else spec  # type: ignore[arg-type]
        for spec in DEFAULT_REGIONS
    )


def region_coverage(spec: RegionSpec) -> dict[str, Any]:
    """The ``[sources.coverage]`` table saying what a simulated region shares."""
    coverage: dict[str, Any] = {}
    if spec.withholds_labs:
        coverage["withholds"] = ["lab-results"]
    for resource_type, since in spec.shares_from:
        category = category_of(resource_type)
        if resource_type == "*":
            coverage["since"] = since
        elif category is not None:
            coverage.setdefault("since_by_category", {})[category] = since
    return coverage


#: Each simulated region's timeout in the demo's ``[[sources]]`` (seconds).
DEMO_SOURCE_TIMEOUT = 5.0


def region_source(spec: RegionSpec, base_url: str) -> dict[str, Any]:
    """The ``[[sources]]`` entry that points the gateway at one simulated region."""
    dialect: dict[str, Any] = {"page_size": spec.page_size}
    if spec.identifier_system != PERSONNUMMER_SYSTEM:
        dialect["identifier_system"] = spec.identifier_system
    if spec.identifier_format != "canonical":
        dialect["identifier_format"] = spec.identifier_format
    return {
        "id": f"region-{spec.id}",
        "name": spec.name,
        "care_provider_hsa_id": spec.care_provider_hsa_id,
        "kind": "fhir-r4",
        "base_url": base_url,
        "timeout": DEMO_SOURCE_TIMEOUT,
        "auth": {"type": "bearer", "token": spec.token},
        # The token the region presents when it announces new data (a demo value).
        "notify_token": f"{spec.token}-notify",
        "dialect": dialect,
    } | ({"coverage": coverage} if (coverage := region_coverage(spec)) else {})


def legacy_source(spec: LegacyRegionSpec, base_url: str) -> dict[str, Any]:
    """The ``[[sources]]`` entry for the simulated legacy XML (RIVTA-style) region."""
    return {
        "id": f"region-{spec.id}",
        "name": spec.name,
        "care_provider_hsa_id": spec.care_provider_hsa_id,
        "kind": "legacy-xml",
        "base_url": base_url,
        "timeout": DEMO_SOURCE_TIMEOUT,
        "auth": {"type": "bearer", "token": spec.token},
        "dialect": {
            "logical_address": spec.care_provider_hsa_id,
            # Stable patient ids across demo restarts; a demo value, not a secret.
            "patient_id_secret": "samlad-demo-legacy-ids",
        },
    }


def write_demo_config(
    data_dir: Path,
    port: int,
    region_urls: dict[str, str],
    regions: tuple[RegionSpec, ...],
    extra_sources: Sequence[dict[str, Any]] = (),
    mail_port: int | None = None,
) -> Path:
    """Write the demo's TOML configuration and the dev issuer's keys; return the file.
    ``mail_port``: the demo's mail sink on loopback, which people's notices go to."""
    data_dir.mkdir(parents=True, exist_ok=True)
    public = f"http://{LOOPBACK}:{port}"
    issuer = DevIssuer(data_dir / "dev-issuer", f"{public}/dev-issuer", f"{public}/fhir")
    issuer.ensure_keys()
    config: dict[str, Any] = {
        "gateway": {
            "dev_mode": True,
            # The demo's receivers (a subscription's endpoint, a webhook) run on loopback.
            "callback_allowed_networks": [f"{LOOPBACK}/32"],
            "data_dir": str(data_dir.resolve()),
            "port": port,
            "public_base_url": public,
            # Ask every region on every request, keeping their last answers in the cache
            # for when they fail: the walkthrough shows a region going down.
            "cache_fresh_seconds": 0,
            # A standard SMART login (gateway/run/authserver), and the demo's own web app
            # allowed to call the gateway from its origin.
            "dev_authorization_server": True,
            "cors_allowed_origins": [public],
            # The web app (the citizen's and the clinician's overview) at /app/.
            "web_app": True,
            "web_app_client_id": DEMO_APP_CLIENT,
        },
        "oauth_clients": [demo_app_client(public)],
        "issuers": [
            {
                "issuer": issuer.issuer,
                "audience": issuer.audience,
                "jwks_file": str(issuer.jwks_file.resolve()),
                "dev_signing_key_file": str(issuer.private_key_file.resolve()),
            }
        ],
        "sources": [region_source(spec, region_urls[spec.id]) for spec in regions]
        + list(extra_sources),
        "guardian_registers": [
            {
                "url": region_urls[spec.id].removesuffix("/fhir") + "/_sim/relations",
                "token": spec.token,
            }
            for spec in regions
        ],
    }
    if mail_port is not None:
        # Notices by e-mail to the demo's mail sink, gathered for a few seconds only.
        config["gateway"]["notices"] = {
            "smtp_host": LOOPBACK,
            "smtp_port": mail_port,
            "link": f"{public}/app/",
            "batch_seconds": 5,
            "poll_seconds": 1,
            "retry_seconds": 5,
        }
    header = "# Written by `samlad demo`: dev mode, SQLite, the local development issuer.\n\n"
    path = data_dir / "demo.toml"
    path.write_text(header + tomli_w.dumps(config), encoding="utf-8")
    return path


#: The demo's own SMART app (a public client: PKCE, no secret).
DEMO_APP_CLIENT = "samlad-app"
DEMO_APP_SCOPES = (
    "openid",
    "fhirUser",
    "launch/patient",
    "offline_access",
    CITIZEN_SCOPE,
    "user/*.rs",
)


#: The PKCE verifier of the login URL the demo prints (a demo value: anyone who reads the
#: banner knows it, so only the terminal's user has the code it is for).
DEMO_VERIFIER = "samlad-demo-pkce-verifier-not-secret-0123456789"


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of ``verifier``."""
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def demo_app_client(public_base_url: str) -> dict[str, Any]:
    """The ``[[oauth_clients]]`` entry of the demo's web app, served at ``/app/``."""
    return {
        "client_id": DEMO_APP_CLIENT,
        "redirect_uris": [f"{public_base_url}/app/"],
        "scopes": " ".join(DEMO_APP_SCOPES).split(),
    }


def simulated_source_ids() -> tuple[str, ...]:
    """The source ids the demo gives its simulated regions, which added sources must avoid."""
    return (*(f"region-{spec.id}" for spec in DEFAULT_REGIONS), f"region-{OST.id}")


def region_ports(region_port_base: int) -> dict[str, int]:
    """Each simulated region's port: the FHIR regions, then Region Öst, consecutively."""
    ids = [spec.id for spec in DEFAULT_REGIONS] + [OST.id]
    return {rid: region_port_base + index for index, rid in enumerate(ids)}


def check_ports(port: int, region_port_base: int) -> None:
    """Refuse a gateway port and region ports that cannot all be used, saying why."""
    count = len(region_ports(region_port_base))
    last = region_port_base + count - 1
    if last > 65535:
        raise CommandError(
            f"--region-port-base {region_port_base} leaves no room for the {count} region "
            f"ports (at most {65535 - count + 1})"
        )
    if region_port_base <= port <= last:
        raise CommandError(
            f"--port {port} is one of the region ports {region_port_base}-{last}: "
            "choose another --port or --region-port-base"
        )


def _cannot_listen(port: int) -> str | None:
    """Why nothing can listen on ``port`` of the loopback address, or None if it can."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError as exc:
            return exc.strerror or "unavailable"
    return None


def samlad_command() -> str:
    """How to run ``samlad`` from the working folder, as a shell word that works there.

    The script installed beside the running interpreter: ``samlad`` when that is the one
    on PATH, else its path (relative when it is below the working folder, as with
    ``.venv/bin/samlad``); ``python -m gateway.run.cli`` when there is no such script.
    """
    script = Path(sys.executable).parent / "samlad"
    if not script.is_file():
        return f"{shlex.quote(sys.executable)} -m gateway.run.cli"
    on_path = shutil.which("samlad")
    if on_path is not None and Path(on_path).resolve() == script.resolve():
        return "samlad"
    try:
        relative = script.absolute().relative_to(Path.cwd())
    except ValueError:
        return shlex.quote(str(script.absolute()))
    return shlex.quote(str(relative) if relative.parent != Path() else f"./{relative}")


async def run_demo(
    data_dir: Path,
    port: int,
    region_port_base: int,
    added_sources: Sequence[dict[str, Any]] = (),
) -> None:
    """Start the regions and the gateway, which also asks ``added_sources`` (``[[sources]]``
    entries checked by :func:`~gateway.run.demo_sources.read_added_sources`); return when
    cancelled (Ctrl-C)."""
    regions = demo_regions()
    ports = region_ports(region_port_base)
    for wanted in [port, *ports.values()]:
        reason = _cannot_listen(wanted)
        if reason is not None:
            raise CommandError(
                f"cannot listen on {LOOPBACK}:{wanted} ({reason}): "
                "choose another --port or --region-port-base"
            )
    urls = {spec.id: spec.base_url(ports[spec.id]) for spec in regions}
    legacy_url = OST.base_url(ports[OST.id])
    sink = await MailSink(LOOPBACK, on_message=mail_filer(data_dir / "mail")).start()
    config_file = write_demo_config(
        data_dir,
        port,
        urls,
        regions,
        [legacy_source(OST, legacy_url), *added_sources],
        mail_port=sink.port,
    )
    settings = load_settings(config_file)

    servers = [make_server(create_region_app(spec)) for spec in regions]
    servers.append(make_server(create_legacy_app(OST)))
    sockets = [bind_socket(LOOPBACK, ports[spec.id]) for spec in regions]
    sockets.append(bind_socket(LOOPBACK, ports[OST.id]))
    urls[OST.id] = legacy_url
    app = create_app(settings)
    gateway = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,  # the gateway's own request log leaves out paths and queries
            timeout_graceful_shutdown=2,
            **forwarded_options(settings.trusted_proxies),
        )
    )
    gateway_socket = bind_socket(LOOPBACK, port)

    tasks = [
        asyncio.create_task(server.serve(sockets=[sock]))
        for server, sock in zip(servers, sockets, strict=True)
    ]
    tasks.append(asyncio.create_task(gateway.serve(sockets=[gateway_socket])))
    while not gateway.started:
        if any(task.done() for task in tasks):
            break
        await asyncio.sleep(0.05)

    if gateway.started:
        services = app.state.services
        person = parse_person_identifier(TEST_PERSON)
        patient_id = await services.persons.remember(person)
        token = dev_token(settings, {"personnummer": TEST_PERSON, "scope": CITIZEN_SCOPE})
        samlad = samlad_command()
        if config_file.resolve() != DEMO_CONFIG.resolve():
            samlad_token = f"{samlad} token --config {shlex.quote(str(config_file))}"
        else:
            samlad_token = f"{samlad} token"
        added = {source["id"]: source["base_url"] for source in added_sources}
        print(
            _banner(settings, config_file, token, patient_id, urls, added, samlad_token),
            flush=True,
        )
    try:
        await asyncio.gather(*tasks)
    finally:
        for server in [*servers, gateway]:
            server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
        await sink.close()


def mail_filer(folder: Path) -> Callable[[Received], None]:
    """What the demo does with each message its mail sink receives: says so, and files
    it in ``folder`` (``1.eml``, ``2.eml``, ...)."""
    folder.mkdir(parents=True, exist_ok=True)

    def filed(received: Received) -> None:
        name = folder / f"{len(list(folder.glob('*.eml'))) + 1}.eml"
        name.write_bytes(received.message.as_bytes())
        print(f"E-post till {', '.join(received.recipients)}: {received.subject}", flush=True)

    return filed


def login_url(settings: Settings) -> str:
    """An authorization request of the demo's app (Tolvan or a clinician logs in there); the
    code it ends with is for the app, which holds the PKCE verifier."""
    endpoints = oauth_endpoints(settings)
    query = urlencode(
        {
            "response_type": "code",
            "client_id": DEMO_APP_CLIENT,
            "redirect_uri": f"{settings.public_base_url}/app/",
            "scope": " ".join(DEMO_APP_SCOPES),
            "aud": settings.fhir_base_url,
            "state": "demo",
            "code_challenge": s256(DEMO_VERIFIER),
            "code_challenge_method": "S256",
        }
    )
    return f"{endpoints.authorization_endpoint}?{query}"


def _banner(
    settings: Settings,
    config: Path,
    token: str,
    patient_id: str,
    urls: dict[str, str],
    added: dict[str, str],
    samlad_token: str,
) -> str:
    base = settings.fhir_base_url
    authorize = login_url(settings)
    token_url = oauth_endpoints(settings).token_endpoint
    regions = "\n".join(f"    {rid:5} {url}" for rid, url in urls.items())
    if added:
        regions += "\n  added sources\n" + "\n".join(
            f"    {sid} {url}" for sid, url in added.items()
        )
    syd = urls["syd"].removesuffix("/fhir")
    tolvan = parse_person_identifier(TEST_PERSON).format("yyyymmdd-nnnn")
    proxy = parse_person_identifier(DEMO_PROXY_PNR).format("yyyymmdd-nnnn")
    return f"""
Samlad demo is running.

  the app           {settings.public_base_url}/app/   (log in as Tolvan, or as a clinician)
  FHIR base URL     {base}
  configuration     {config}
  simulated regions
{regions}

A citizen token for the test person Tolvan Tolvansson ({tolvan}), valid 8 hours,
and the id of their unified patient record:

export TOKEN={token}
export PID={patient_id}

Find the unified patient (the identity number travels in the body, not the URL):

curl -s -H "Authorization: Bearer $TOKEN" -X POST \\
  --data-urlencode "identifier={PERSONNUMMER_SYSTEM}|{TEST_PERSON}" \\
  {base}/Patient/_search

The whole unified record from all regions, with a status per region at the end:

curl -s -H "Authorization: Bearer $TOKEN" "{base}/Patient/$PID/\\$everything"

Take Region Syd down, then ask again: its status says stale (it did not answer), and
its data comes from the gateway's cache of its last answer, with the time of that
answer (lastSync). The same command with "none" for "down" brings it back.

curl -s -X PUT -H "Authorization: Bearer sim-syd-token" -H "Content-Type: application/json" \\
  -d '{{"fault": "down"}}' {syd}/_sim/behaviour

Tolvan books a time: free times at every region's units, then a booking of one (the
Slot's id from the first answer), sent to the region and unit that own it; 201, or 202
and a status URL when that region is down (delivered, once, when it is back). Cancel it
with a PUT of the Appointment with "status": "cancelled"; ask for a renewal with a POST
of a Task whose focus is a MedicationRequest ([docs/api.md] "Writes to the regions"):

curl -s -H "Authorization: Bearer $TOKEN" \
  "{base}/Slot?status=free&start=ge2026-11-03&service-type=L%C3%A4karbes%C3%B6k"
curl -s -i -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/fhir+json" \
  -H "Idempotency-Key: my-first-booking" -d '{{"resourceType": "Appointment", "status": \
  "booked", "slot": [{{"reference": "Slot/SLOT_ID"}}], "participant": [{{"actor": \
  {{"reference": "Patient/'$PID'"}}, "status": "accepted"}}]}}' {base}/Appointment

A standard SMART login (development only: you pick who you are): apps discover it at
{base}/.well-known/smart-configuration; the demo's app is the public client
{DEMO_APP_CLIENT} with the redirect URI {settings.public_base_url}/app/ (PKCE S256).
Log in as Tolvan (or a clinician) here; you come back to {settings.public_base_url}/app/?code=…:

{authorize}

and exchange that code for tokens (CODE from the address bar):

curl -s -d grant_type=authorization_code -d client_id={DEMO_APP_CLIENT} -d code=CODE \\
  -d redirect_uri={settings.public_base_url}/app/ -d code_verifier={DEMO_VERIFIER} \\
  {token_url}

Tolvan may make another adult his proxy (ombud), say {proxy}, who then logs in as
themselves and picks Tolvan's record (docs/consent.md, "Proxies for adults"); the token
of that person: {samlad_token} --role citizen --personnummer {proxy}

More tokens:  {samlad_token} --role clinician   (--help lists the options)
Ctrl-C stops everything.
"""

"""`samlad demo` end to end, as a newcomer runs it: start, paste the printed request, stop."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.settings import load_settings
from simregions.app import create_app as create_region_app
from simregions.regions import DEFAULT_REGIONS
from simregions.server import serve_in_thread
from tests.demo_process import DemoProcess, free_demo_ports

SAMLAD = [sys.executable, "-m", "gateway.run.cli"]


class Demo:
    """The demo as its banner describes it."""

    def __init__(self, running: DemoProcess, data_dir: Path) -> None:
        self.running = running
        self.process = running.process
        self.banner = running.banner
        self.data_dir = data_dir

    @property
    def token(self) -> str:
        return self.running.exports["TOKEN"]

    @property
    def patient_id(self) -> str:
        return self.running.exports["PID"]

    @property
    def everything_url(self) -> str:
        """The banner's ``$everything`` command's URL, with the printed patient id."""
        match = re.search(r'"(http://\S+/Patient/)\$PID/\\(\$everything)"', self.banner)
        assert match, self.banner
        return match.group(1) + self.patient_id + "/" + match.group(2)

    @property
    def down_command(self) -> tuple[str, str]:
        match = re.search(
            r"-X PUT -H \"Authorization: Bearer (\S+)\".*?-d '.*?' (http://\S+)", self.banner, re.S
        )
        assert match, self.banner
        return match.group(1), match.group(2)


def start_demo(data_dir: Path, *options: str) -> Demo:
    """Start `samlad demo` on free ports (with ``options`` besides) and wait for its banner."""
    port, region_base = free_demo_ports()
    command = [
        *SAMLAD,
        "demo",
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        "--region-port-base",
        str(region_base),
        *options,
    ]
    return Demo(DemoProcess(command, Path.cwd()), data_dir)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    running = start_demo(tmp_path_factory.mktemp("demo") / "data")
    try:
        yield running
    finally:
        running.running.stop()


def _statuses(bundle: dict[str, object]) -> dict[str, str]:
    entries = bundle["entry"]
    assert isinstance(entries, list)
    (outcome,) = [e["resource"] for e in entries if e["search"]["mode"] == "outcome"]
    return {
        issue["extension"][0]["extension"][0]["valueString"]: issue["details"]["coding"][0]["code"]
        for issue in outcome["issue"]
        if "extension" in issue  # a clinician's notice on blocks names no source
    }


def test_printed_request_returns_all_three_regions_then_survives_one_down(demo: Demo) -> None:
    headers = {"Authorization": f"Bearer {demo.token}"}
    response = httpx.get(demo.everything_url, headers=headers, timeout=30)
    assert response.status_code == 200, (response.text, demo.banner)
    bundle = response.json()
    assert _statuses(bundle) == {
        "region-nord": "ok",
        "region-vast": "ok",
        "region-syd": "ok",
        "region-ost": "ok",
    }
    assert len(bundle["entry"]) > 100
    legacy = [e for e in bundle["entry"] if "source:region-ost#" in str(e["resource"].get("meta"))]
    assert {e["resource"]["resourceType"] for e in legacy} >= {"Observation", "MedicationRequest"}

    sim_token, behaviour_url = demo.down_command
    down = httpx.put(
        behaviour_url, json={"fault": "down"}, headers={"Authorization": f"Bearer {sim_token}"}
    )
    assert down.status_code == 200
    try:
        again = httpx.get(demo.everything_url, headers=headers, timeout=30)
        assert again.status_code == 200
        assert _statuses(again.json()) == {
            "region-nord": "ok",
            "region-vast": "ok",
            "region-syd": "stale",  # its last answer, from the cache
            "region-ost": "ok",
        }
        assert len(again.json()["entry"]) == len(bundle["entry"])
    finally:
        httpx.put(
            behaviour_url, json={"fault": "none"}, headers={"Authorization": f"Bearer {sim_token}"}
        )


def _coverage(issue: dict[str, Any]) -> dict[str, Any]:
    """A source's coverage from its issue: learnedFrom, since, shares (category: since),
    withholds."""
    (found,) = [e for e in issue["extension"] if e["url"].endswith("/source-coverage")]
    parts = found["extension"]
    shares: dict[str, str | None] = {}
    for share in (p["extension"] for p in parts if p["url"] == "shares"):
        values = {p["url"]: next(v for k, v in p.items() if k != "url") for p in share}
        shares[values["category"]] = values.get("since")
    return {
        "learnedFrom": {p["valueCode"] for p in parts if p["url"] == "learnedFrom"},
        "since": next((p["valueDate"] for p in parts if p["url"] == "since"), None),
        "shares": shares,
        "withholds": [p["valueCode"] for p in parts if p["url"] == "withholds"],
    }


def test_the_overview_says_what_each_region_shares_and_since_when(demo: Demo) -> None:
    """Region Syd shares no lab results, nothing before 2001 and notes only from 2005, as
    the demo's configuration says; what the FHIR regions and Region Öst offer is learned
    from their CapabilityStatements and contracts. The status of ``$everything`` (what the
    overview reads) says so for each region, and Region Syd's labs are not in the record."""
    headers = {"Authorization": f"Bearer {demo.token}"}
    covered: dict[str, dict[str, Any]] = {}
    for _ in range(50):  # learned in the background just after start-up
        bundle = httpx.get(demo.everything_url, headers=headers, timeout=30).json()
        (outcome,) = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
        covered = {
            issue["extension"][0]["extension"][0]["valueString"]: _coverage(issue)
            for issue in outcome["issue"]
        }
        if all(len(c["learnedFrom"] - {"configuration"}) == 1 for c in covered.values()):
            break
        time.sleep(0.2)
    syd = covered["region-syd"]
    assert syd["learnedFrom"] == {"configuration", "capability-statement"}
    assert syd["since"] == "2001-01-01"
    assert syd["shares"]["notes"] == "2005-01-01"
    assert syd["withholds"] == ["lab-results"]
    for region in ("region-nord", "region-vast"):
        assert covered[region]["learnedFrom"] == {"capability-statement"}
        assert covered[region]["withholds"] == []
        assert covered[region]["since"] is None
    ost = covered["region-ost"]
    assert ost["learnedFrom"] == {"contracts"}
    assert {"appointments", "procedures"} <= set(ost["withholds"])
    assert "lab-results" in ost["shares"]
    from_syd = [
        e["resource"]
        for e in bundle["entry"]
        if "source:region-syd#" in str(e["resource"].get("meta", {}).get("source"))
    ]
    assert from_syd
    assert not [r for r in from_syd if "laboratory" in str(r.get("category"))]


def test_a_source_added_with_add_sources_is_asked_beside_the_regions(tmp_path: Path) -> None:
    """A FHIR server of one's own on loopback (a simulated region playing a foreign one,
    with another token) joins the demo from a file of ``[[sources]]`` entries, its
    identifier dialect included."""
    foreign = dataclasses.replace(DEFAULT_REGIONS[1], token="my-fhir-token")
    sources = tmp_path / "my-sources.toml"
    with serve_in_thread(create_region_app(foreign)) as server:
        sources.write_text(
            f"""[[sources]]
id = "my-fhir"
name = "My FHIR server"
kind = "fhir-r4"
base_url = "{server.url}/fhir"

[sources.auth]
type = "bearer"
token = "my-fhir-token"

[sources.dialect]  # it files numbers under a system of its own, in one form
identifier_systems = ["{foreign.identifier_system}"]
identifier_formats = ["{foreign.identifier_format}"]
""",
            encoding="utf-8",
        )
        demo = start_demo(tmp_path / "data", "--add-sources", str(sources))
        try:
            assert f"my-fhir {server.url}/fhir" in demo.banner
            response = httpx.get(
                demo.everything_url,
                headers={"Authorization": f"Bearer {demo.token}"},
                timeout=30,
            )
            assert response.status_code == 200, response.text
            assert _statuses(response.json()) == {
                "region-nord": "ok",
                "region-vast": "ok",
                "region-syd": "ok",
                "region-ost": "ok",
                "my-fhir": "ok",
            }
            own = [e for e in response.json()["entry"] if "source:my-fhir#" in str(e["resource"])]
            assert own, "no resource came from the added source"
        finally:
            demo.running.stop()
    # Written into the demo's configuration: every other command sees it too.
    settings = load_settings(tmp_path / "data" / "demo.toml")
    assert [s.id for s in settings.sources][-1] == "my-fhir"


def citizen_token_command(config: Path) -> subprocess.CompletedProcess[str]:
    command = [*SAMLAD, "token", "--config", str(config), "--role", "citizen"]
    command += ["--personnummer", "191212121212"]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def test_token_command_works_for_the_demo_configuration(demo: Demo) -> None:
    config = demo.data_dir / "demo.toml"
    result = citizen_token_command(config)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    response = httpx.get(
        demo.everything_url.removesuffix("/$everything"),
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 200
    assert response.json()["resourceType"] == "Patient"


def test_the_banner_names_the_app_and_the_demo_serves_it(demo: Demo) -> None:
    """The app's address the banner prints serves the page, its scripts and its client
    (the one the demo registers, whose redirect URI is that address)."""
    match = re.search(r"^  the app +(http://\S+/app/) ", demo.banner, re.M)
    assert match, demo.banner
    app = match.group(1)
    page = httpx.get(app, timeout=30)
    assert page.status_code == 200
    assert '<html lang="sv">' in page.text
    for name in re.findall(r'src="([^"]+)"', page.text):
        assert httpx.get(app + name, timeout=30).status_code == 200, name
    config = httpx.get(app + "config.json", timeout=30).json()
    assert config["clientId"] == "samlad-app"
    home = httpx.get(app.removesuffix("app/"), timeout=30)
    assert home.status_code == 303
    assert home.headers["location"] == "/app/"


def test_a_standard_smart_client_library_logs_in_to_the_demo(demo: Demo) -> None:
    """fhir-kit-client, as the demo's app (the client the demo registers, its redirect
    the app's address), finds the demo's login by itself and reads Tolvan's record."""
    from tests.gateway.smart_helpers import fhir_kit_client_login

    match = re.search(r"^  the app +(http://\S+/app/) ", demo.banner, re.M)
    assert match, demo.banner
    app = match.group(1)
    public = app.removesuffix("/app/")
    read = fhir_kit_client_login(f"{public}/fhir", "samlad-app", app, public)
    assert read["patient"]["id"] == demo.patient_id
    assert read["patient"]["name"][0]["given"] == ["Tolvan"]
    assert "Observation" in read["observations"]


def test_token_command_refuses_a_configuration_without_the_dev_issuer(tmp_path: Path) -> None:
    config = tmp_path / "prod.toml"
    config.write_text(
        '[gateway]\nid_key = "0123456789abcdef0123"\ndata_key = "0123456789abcdef0123"\n'
        f'audit_checkpoint_key = "{"a1" * 32}"\n',
        encoding="utf-8",
    )
    result = citizen_token_command(config)
    assert result.returncode != 0
    assert "refusing" in result.stderr
    assert result.stdout == ""


def test_ctrl_c_stops_everything(tmp_path: Path) -> None:
    demo = start_demo(tmp_path / "data")
    assert httpx.get(demo.everything_url, timeout=10).status_code == 401
    assert demo.running.stop() == 0
    assert "Samlad demo stopped." in demo.running.output
    assert "Traceback" not in demo.running.output
    with pytest.raises(httpx.ConnectError):
        httpx.get(demo.everything_url, timeout=2)


def test_the_banner_says_stale_and_names_the_demos_configuration(demo: Demo) -> None:
    """What the banner promises is what the API says; its token command names the file."""
    assert "failed" not in demo.banner
    assert "stale" in demo.banner
    (more,) = [line for line in demo.banner.splitlines() if line.startswith("More tokens:")]
    assert f"token --config {demo.data_dir / 'demo.toml'} --role clinician" in more


def test_consent_walkthrough_in_the_demo(demo: Demo) -> None:
    """The README's walkthrough: refuse, grant, read, block, withdraw, emergency, log."""
    from tests.gateway.consent_helpers import consent_body

    config = demo.data_dir / "demo.toml"
    base = demo.everything_url.rsplit("/Patient/", 1)[0]
    patient_id = demo.patient_id
    citizen = {"Authorization": f"Bearer {demo.token}"}
    doc_token = subprocess.run(
        [*SAMLAD, "token", "--config", str(config), "--role", "clinician"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    doc = {"Authorization": f"Bearer {doc_token}"}
    with httpx.Client(base_url=base, timeout=30) as fhir:
        assert fhir.get(f"/Patient/{patient_id}/$everything", headers=doc).status_code == 403
        consent = fhir.post(
            "/Consent", json=consent_body(patient_id, "SE2321009001-NORD"), headers=citizen
        )
        assert consent.status_code == 201
        seen = fhir.get(f"/Patient/{patient_id}/$everything", headers=doc)
        assert set(_statuses(seen.json())) == {
            "region-nord",
            "region-vast",
            "region-syd",
            "region-ost",
        }
        blocked = fhir.post(
            "/Consent",
            json=consent_body(patient_id, "SE2321009003-SYD0", kind="deny"),
            headers=citizen,
        )
        assert blocked.status_code == 201
        seen = fhir.get(f"/Patient/{patient_id}/$everything", headers=doc)
        assert set(_statuses(seen.json())) == {"region-nord", "region-vast", "region-ost"}
        withdrawn = fhir.put(
            f"/Consent/{consent.json()['id']}",
            json=consent.json() | {"status": "inactive"},
            headers=citizen,
        )
        assert withdrawn.status_code == 200
        assert fhir.get(f"/Patient/{patient_id}", headers=doc).status_code == 403
        reason = {
            "resourceType": "Parameters",
            "parameter": [{"name": "reason", "valueString": "Akut"}],
        }
        assert (
            fhir.post(
                f"/Patient/{patient_id}/$emergency-access", json=reason, headers=doc
            ).status_code
            == 200
        )
        assert fhir.get(f"/Patient/{patient_id}", headers=doc).status_code == 200
        log = fhir.get(f"/AuditEvent?patient={patient_id}&_sort=date", headers=citizen)
        assert log.status_code == 200
        doctor_events = [
            e["resource"]
            for e in log.json()["entry"]
            if "SE2321009001-DOC1" in str(e["resource"]["agent"])
        ]
        assert [e["outcome"] for e in doctor_events] == ["4", "0", "0", "4", "0", "0"]
        assert "emergency" in str(doctor_events[-1]).lower()
    verify = subprocess.run(
        [*SAMLAD, "audit", "verify", "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_tolvan_grants_a_proxy_for_medicines_and_lab_results_and_sees_their_reads(
    demo: Demo,
) -> None:
    """Tolvan makes another adult of the test population his proxy for medicines and lab
    results; they log in as themselves, open Tolvan's record, see only those, and Tolvan
    sees their reads in his log."""
    from tests.gateway.consent_helpers import proxy_body

    config = demo.data_dir / "demo.toml"
    base = demo.everything_url.rsplit("/Patient/", 1)[0]
    tolvan, proxy_number = demo.patient_id, "197904105082"
    citizen = {"Authorization": f"Bearer {demo.token}"}
    command = [*SAMLAD, "token", "--config", str(config), "--role", "citizen"]
    command += ["--personnummer", proxy_number]
    proxy_token = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    proxy = {"Authorization": f"Bearer {proxy_token.strip()}"}
    body = proxy_body(tolvan, proxy_number, categories=("medicines", "lab-results"))
    with httpx.Client(base_url=base, timeout=60) as fhir:
        assert fhir.get(f"/Patient/{tolvan}", headers=proxy).status_code == 403
        assert fhir.post("/Consent", json=body, headers=citizen).status_code == 201
        listed = fhir.get("/Patient", headers=proxy).json()
        assert tolvan in [e["resource"]["id"] for e in listed["entry"]]
        seen = fhir.get(f"/Patient/{tolvan}/$everything", headers=proxy)
        assert seen.status_code == 200
        matches = [e["resource"] for e in seen.json()["entry"] if e["search"]["mode"] == "match"]
        types = {r["resourceType"] for r in matches}
        assert types <= {
            "Patient",
            "MedicationRequest",
            "MedicationDispense",
            "Observation",
            "DiagnosticReport",
        }
        assert {"MedicationRequest", "Observation"} <= types
        assert all(
            "laboratory" in str(r.get("category"))
            for r in matches
            if r["resourceType"] == "Observation"
        )
        assert fhir.get(f"/Condition?patient={tolvan}", headers=proxy).status_code == 403
        log = fhir.get(f"/AuditEvent?patient={tolvan}", headers=citizen)
        assert log.status_code == 200
        by_proxy = [
            e["resource"]
            for e in log.json()["entry"]
            if "'code': 'proxy'" in str(e["resource"]["agent"])
        ]
        assert len(by_proxy) >= 3
        assert proxy_number not in log.text


def test_the_printed_login_url_logs_tolvan_in_and_the_printed_exchange_gives_tokens(
    demo: Demo,
) -> None:
    """The banner's authorization URL (the demo's app, PKCE) leads to the login page; its
    code, exchanged as the banner's curl command says, is a token that reads Tolvan's
    record; the browser's origin is allowed (CORS)."""
    from tests.gateway.smart_helpers import hidden_fields

    url = re.search(r"^(http://\S+/dev-issuer/authorize\?\S+)$", demo.banner, re.M)
    exchange = re.search(
        r"curl -s -d grant_type=authorization_code -d client_id=(\S+) -d code=CODE \\\n"
        r"\s+-d redirect_uri=(\S+) -d code_verifier=(\S+) \\\n\s+(\S+)",
        demo.banner,
    )
    assert url, demo.banner
    assert exchange, demo.banner
    client_id, redirect_uri, verifier, token_url = exchange.groups()
    with httpx.Client(timeout=30) as browser:
        page = browser.get(url.group(1))
        assert page.status_code == 200, page.text
        target = url.group(1).split("?")[0]
        form = hidden_fields(page.text) | {"role": "citizen", "person": "191212121212"}
        consent = browser.post(target, data=form)
        answer = browser.post(target, data={**hidden_fields(consent.text), "decision": "allow"})
        assert answer.status_code == 302, answer.text
        location = answer.headers["location"]
        assert location.startswith(redirect_uri + "?")
        code = re.search(r"[?&]code=([^&]+)", location)
        assert code
        form = {
            "grant_type": "authorization_code",
            "client_id": client_id,
            "code": code.group(1),
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        token = browser.post(token_url, data=form).json()
        assert token["patient"] == demo.patient_id
        origin = redirect_uri.removesuffix("/app/")
        response = browser.get(
            demo.everything_url.removesuffix("/$everything"),
            headers={"Authorization": f"Bearer {token['access_token']}", "Origin": origin},
        )
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == origin


# -- the whole record (what NPÖ and 1177 Journalen show), as the demo serves it ---------

LAB_SECTION = "http://terminology.hl7.org/CodeSystem/v2-0074"


def _categories_of(resource: dict[str, Any]) -> set[str]:
    return {
        str(coding.get("code"))
        for concept in resource.get("category") or ()
        if isinstance(concept, dict)
        for coding in concept.get("coding") or ()
    }


def _is(kind: str, *categories: str, other_than: str | None = None) -> Any:
    def holds(resource: dict[str, Any]) -> bool:
        if resource["resourceType"] != kind:
            return False
        found = _categories_of(resource)
        if other_than is not None:
            return other_than not in found
        return not categories or bool(found & set(categories))

    return holds


#: Each category NPÖ and 1177 Journalen show, and whether the legacy RIV-TA region has a
#: contract for it (those come from it and at least one FHIR region).
CATEGORIES: dict[str, tuple[Any, bool]] = {
    "diagnoses": (_is("Condition"), True),
    "prescribed medicines": (_is("MedicationRequest"), True),
    "dispensed medicines": (_is("MedicationDispense"), False),
    "vaccinations": (_is("Immunization"), True),
    "allergies and hypersensitivities": (_is("AllergyIntolerance"), True),
    "other alert information": (_is("Flag"), True),
    "care contacts": (_is("Encounter"), True),
    "journal notes": (_is("DocumentReference"), True),
    "lab results": (_is("Observation", "laboratory"), True),
    "lab reports": (_is("DiagnosticReport", "LAB"), True),
    "imaging and other examinations": (_is("DiagnosticReport", "RAD", "IMG"), True),
    "referrals": (_is("ServiceRequest"), True),
    "care plans": (_is("CarePlan"), True),
    "care teams": (_is("CareTeam"), False),
    "procedures": (_is("Procedure"), False),
    "measurements and growth": (_is("Observation", "vital-signs"), False),
    "functional status": (_is("Observation", "survey"), True),
    "appointments": (_is("Appointment"), False),
}


def _sources_of(resource: dict[str, Any]) -> set[str]:
    """The source a merged resource came from, and those that reported it too."""
    uris = [resource.get("meta", {}).get("source", "")]
    uris += [e.get("valueUri", "") for e in resource.get("extension", [])]
    return {
        uri.removeprefix("urn:samlad:source:").partition("#")[0]
        for uri in uris
        if isinstance(uri, str) and uri.startswith("urn:samlad:source:")
    }


def _get(fhir: httpx.Client, path: str, headers: dict[str, str]) -> httpx.Response:
    """A GET that waits out the demo's rate limit (its Retry-After) rather than fail."""
    for _ in range(20):
        response = fhir.get(path, headers=headers)
        if response.status_code != 429:
            return response
        time.sleep(float(response.headers.get("Retry-After", "1")))
    return response


def _whole(fhir: httpx.Client, path: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for _ in range(100):
        response = _get(fhir, path, headers)
        assert response.status_code == 200, response.text
        bundle = response.json()
        entries += bundle["entry"]
        following = [link["url"] for link in bundle.get("link", []) if link["relation"] == "next"]
        if not following:
            return entries
        path = following[0]
    raise AssertionError("paging did not end")


def _references(node: Any) -> set[str]:
    if isinstance(node, dict):
        own = {node["reference"]} if isinstance(node.get("reference"), str) else set()
        return own.union(*(_references(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_references(v) for v in node))
    return set()


def test_the_whole_record_from_every_region_every_reference_resolving(demo: Demo) -> None:
    """Tolvan's ``$everything`` holds every category from at least two regions (the legacy
    one among them where it has a contract for it), every reference in it reads through
    the gateway, the summary has allergies, vaccinations, results and vital signs, and the
    note the legacy region holds back from him is absent for him, present for a doctor
    with his consent."""
    from tests.gateway.consent_helpers import consent_body

    base = demo.everything_url.rsplit("/Patient/", 1)[0]
    citizen = {"Authorization": f"Bearer {demo.token}"}
    with httpx.Client(base_url=base, timeout=60) as fhir:
        path = f"{base}/Patient/{demo.patient_id}/$everything"
        entries = _whole(fhir, path, citizen)
        record = [e["resource"] for e in entries if e["search"]["mode"] == "match"]
        short = {}
        for name, (holds, legacy) in CATEGORIES.items():
            regions = set().union(*(_sources_of(r) for r in record if holds(r)))
            if len(regions) < 2 or (legacy and "region-ost" not in regions):
                short[name] = sorted(regions)
        assert not short, f"categories from fewer than two regions: {short}"
        unresolved, kinds = {}, set()
        for reference in sorted(_references(record)):
            kind, _, local = reference.partition("/")
            if not local or "/" in local or "://" in reference or reference.startswith("#"):
                continue
            kinds.add(kind)
            read = _get(fhir, f"/{reference}", citizen)
            if read.status_code != 200:
                unresolved[reference] = read.status_code
        assert not unresolved, f"references that do not read through the gateway: {unresolved}"
        assert {"Practitioner", "Organization", "Location", "Encounter", "Observation"} <= kinds

        summary = _get(fhir, f"/Patient/{demo.patient_id}/$summary", citizen).json()
        sections = {
            s["code"]["coding"][0]["code"]: s for s in summary["entry"][0]["resource"]["section"]
        }
        for code in ("48765-2", "11369-6", "30954-2", "8716-3"):
            assert sections[code].get("entry"), f"the summary's {code} section has entries"

        def held_back(resources: list[dict[str, Any]]) -> set[str]:
            return {
                r["id"]
                for r in resources
                if r["resourceType"] == "DocumentReference"
                and any(t.get("code") == "false" for t in r["meta"].get("tag", []))
            }

        assert not held_back(record), "nothing held back from Tolvan reaches him"
        doctor = {"Authorization": f"Bearer {_clinician_token(demo)}"}
        granted = fhir.post(
            "/Consent", json=consent_body(demo.patient_id, "SE2321009001-NORD"), headers=citizen
        )
        assert granted.status_code == 201, granted.text
        try:
            seen = _whole(fhir, f"{base}/DocumentReference?patient={demo.patient_id}", doctor)
            notes = [e["resource"] for e in seen if e["search"]["mode"] == "match"]
            assert held_back(notes), "the doctor with his consent reads the held-back note"
        finally:
            fhir.put(
                f"/Consent/{granted.json()['id']}",
                json=granted.json() | {"status": "inactive"},
                headers=citizen,
            )


def _clinician_token(demo: Demo) -> str:
    config = demo.data_dir / "demo.toml"
    return subprocess.run(
        [*SAMLAD, "token", "--config", str(config), "--role", "clinician"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_tolvan_downloads_his_ips_document_and_whole_record_in_the_demo(demo: Demo) -> None:
    """Taking the record along in the demo (his printing is in
    tests/browser/test_take_along.py): the IPS document and the whole record from every
    region, as files, each download in his log."""
    base = demo.everything_url.rsplit("/Patient/", 1)[0]
    citizen = {"Authorization": f"Bearer {demo.token}"}
    path = f"/Patient/{demo.patient_id}/$download"
    with httpx.Client(base_url=base, timeout=60) as fhir:
        document = fhir.get(path, headers=citizen)
        assert document.status_code == 200, document.text
        assert document.headers["content-disposition"].startswith("attachment; filename=")
        bundle = document.json()
        assert bundle["type"] == "document"
        composition = bundle["entry"][0]["resource"]
        assert composition["resourceType"] == "Composition"
        patient = next(
            e["resource"]
            for e in bundle["entry"]
            if e["fullUrl"] == composition["subject"]["reference"]
        )
        assert patient["name"][0]["family"] == "Tolvansson"

        record = fhir.get(path, params={"content": "record"}, headers=citizen)
        assert record.status_code == 200, record.text
        assert record.headers["content-type"].startswith("application/fhir+ndjson")
        lines = [json.loads(line) for line in record.text.splitlines()]
        assert lines[0]["resourceType"] == "Patient"
        status = lines[-1]
        assert status["id"] == "source-status"
        named = {i["extension"][0]["extension"][0]["valueString"] for i in status["issue"]}
        assert named == {"region-nord", "region-vast", "region-syd", "region-ost"}

        log = fhir.get("/AuditEvent", params={"patient": demo.patient_id}, headers=citizen)
        actions = {
            coding["code"]
            for entry in log.json()["entry"]
            for coding in entry["resource"].get("subtype", [])
        }
        assert {"download-summary", "download-record"} <= actions


def test_tolvan_seals_region_syd_from_his_own_view_but_not_from_his_clinician(
    demo: Demo,
) -> None:
    """Tolvan seals Region Syd from his own online view: its data and its status vanish
    for him, and a clinician he consented to still reads it; lifting the seal restores it."""
    from tests.gateway.consent_helpers import consent_body, seal_body

    config = demo.data_dir / "demo.toml"
    base = demo.everything_url.rsplit("/Patient/", 1)[0]
    patient_id, syd = demo.patient_id, "SE2321009003-SYD0"
    citizen = {"Authorization": f"Bearer {demo.token}"}
    # A clinician of Region Väst, so that the walkthrough's log of DOC1 stays its own.
    doc_token = subprocess.run(
        [
            *SAMLAD,
            "token",
            "--config",
            str(config),
            "--role",
            "clinician",
            "--hsa-id",
            "SE2321009002-DOC5",
            "--care-unit",
            "SE2321009002-MEDV",
            "--care-provider",
            "SE2321009002-VAST",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    doc = {"Authorization": f"Bearer {doc_token}"}
    everything = f"/Patient/{patient_id}/$everything?_count=1000"
    with httpx.Client(base_url=base, timeout=60) as fhir:
        # Whatever block of Region Syd an earlier step left would hide it from the clinician.
        listed = _get(fhir, f"/Consent?patient={patient_id}", citizen).json()
        for entry in listed.get("entry", []):
            choice = entry["resource"]
            if (
                choice["status"] == "active"
                and syd in str(choice)
                and "online-access" not in str(choice)
            ):
                lifted = fhir.put(
                    f"/Consent/{choice['id']}",
                    json=choice | {"status": "inactive"},
                    headers=citizen,
                )
                assert lifted.status_code == 200, lifted.text
        consent = fhir.post(
            "/Consent", json=consent_body(patient_id, "SE2321009002-VAST"), headers=citizen
        )
        assert consent.status_code == 201, consent.text
        assert "region-syd" in _statuses(_get(fhir, everything, citizen).json())

        sealed = fhir.post("/Consent", json=seal_body(patient_id, hsa_id=syd), headers=citizen)
        assert sealed.status_code == 201, sealed.text
        mine = _whole(fhir, everything, citizen)
        assert mine, "Tolvan reads the rest of his record"
        assert syd not in str(mine)
        assert "region-syd" not in str(mine), "Region Syd is not even named to him"
        theirs = _whole(fhir, everything, doc)
        assert syd in str(theirs), "the clinician he consented to reads Region Syd"

        seal_id = sealed.json()["id"]
        lift = {"resourceType": "Consent", "id": seal_id, "status": "inactive"}
        assert fhir.put(f"/Consent/{seal_id}", json=lift, headers=citizen).status_code == 200
        assert syd in str(_whole(fhir, everything, citizen)), "lifted, it is back"
        withdrawn = fhir.put(
            f"/Consent/{consent.json()['id']}",
            json=consent.json() | {"status": "inactive"},
            headers=citizen,
        )
        assert withdrawn.status_code == 200


def test_a_new_lab_result_and_a_clinicians_read_reach_tolvans_email(tmp_path: Path) -> None:
    """Tolvan asks to be told; a new lab result at Region Nord and a clinician's read each
    reach his e-mail at the demo's mail sink on loopback, with no health data in it."""
    import tomllib
    from datetime import UTC, datetime
    from email import message_from_bytes, policy

    from tests.gateway.consent_helpers import consent_body

    demo = start_demo(tmp_path / "data")
    try:
        config = demo.data_dir / "demo.toml"
        nord = next(
            s for s in tomllib.loads(config.read_text())["sources"] if s["id"] == "region-nord"
        )
        region = {"Authorization": f"Bearer {nord['auth']['token']}"}
        base = demo.everything_url.rsplit("/Patient/", 1)[0]
        patient_id = demo.patient_id
        citizen = {"Authorization": f"Bearer {demo.token}"}
        doc_token = subprocess.run(
            [*SAMLAD, "token", "--config", str(config), "--role", "clinician"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        with httpx.Client(base_url=base, timeout=30) as fhir:
            settings = {
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "kind", "valueCode": "lab-result"},
                    {"name": "kind", "valueCode": "access"},
                    {"name": "email", "valueString": "tolvan@example.se"},
                ],
            }
            chosen = fhir.post(
                f"/Patient/{patient_id}/$notification-settings", json=settings, headers=citizen
            )
            assert chosen.status_code == 200, chosen.text
            labs = fhir.get(
                f"/Observation?patient={patient_id}&category=laboratory", headers=citizen
            ).json()
            local = next(
                e["resource"]["id"].removeprefix("region-nord.")
                for e in labs["entry"]
                if e["resource"]["id"].startswith("region-nord.")
            )
            result = httpx.get(f"{nord['base_url']}/Observation/{local}", headers=region).json()
            now = datetime.now(UTC).isoformat()
            result |= {"id": "demo-new-result", "effectiveDateTime": now}
            result["meta"]["lastUpdated"] = now
            region_root = nord["base_url"].removesuffix("/fhir")
            put = httpx.put(f"{region_root}/_sim/resources", json=result, headers=region)
            assert put.status_code == 204
            assert fhir.get(f"/Patient/{patient_id}/$everything", headers=citizen).is_success
            consent = consent_body(patient_id, "SE2321009001-NORD")
            assert fhir.post("/Consent", json=consent, headers=citizen).status_code == 201
            doc = {"Authorization": f"Bearer {doc_token}"}
            assert fhir.get(f"/Patient/{patient_id}", headers=doc).status_code == 200
        mails: list[Any] = []
        deadline = time.monotonic() + 60
        while len(mails) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
            mails = [
                message_from_bytes(path.read_bytes(), policy=policy.default)
                for path in sorted((demo.data_dir / "mail").glob("*.eml"))
            ]
        assert sorted(str(m["Subject"]) for m in mails) == [
            "Din journal har lästs",
            "Ny information i din journal",
        ]
        for mail in mails:
            assert mail["To"] == "tolvan@example.se"
            text = mail.as_string()
            for secret in ("191212121212", "1212-1212", "Tolvansson", patient_id, local):
                assert secret not in text
            for coding in result["code"]["coding"]:
                assert coding["code"] not in text
    finally:
        demo.running.stop()
    assert "E-post till tolvan@example.se: Ny information i din journal" in demo.running.output


def _free_slot(fhir: httpx.Client, headers: dict[str, str], region: str) -> str:
    found = fhir.get("/Slot", params={"status": "free", "start": "ge2026-11-03"}, headers=headers)
    assert found.status_code == 200, found.text
    return next(
        str(e["resource"]["id"])
        for e in found.json()["entry"]
        if e["search"]["mode"] == "match" and e["resource"]["id"].startswith(f"region-{region}.")
    )


def _booking(patient_id: str, slot: str) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "status": "booked",
        "slot": [{"reference": f"Slot/{slot}"}],
        "participant": [{"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"}],
    }


def test_tolvan_books_cancels_renews_and_a_booking_waits_for_its_region(demo: Demo) -> None:
    """Issue 19's demo: a time at a Region Väst unit booked and cancelled, a medicine from
    Region Nord renewed, and a booking made while Region Väst is down delivered exactly
    once when it is back."""
    base = demo.everything_url.rsplit("/Patient/", 1)[0]
    citizen = {"Authorization": f"Bearer {demo.token}"}
    patient_id = demo.patient_id
    with httpx.Client(base_url=base, timeout=30) as fhir:
        slot = _free_slot(fhir, citizen, "vast")
        booked = fhir.post(
            "/Appointment",
            json=_booking(patient_id, slot),
            headers=citizen | {"Idempotency-Key": "demo-booking"},
        )
        assert booked.status_code == 201, booked.text
        cancelled = fhir.put(
            f"/Appointment/{booked.json()['id']}",
            json=booked.json() | {"status": "cancelled"},
            headers=citizen,
        )
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"

        medicines = fhir.get(f"/MedicationRequest?patient={patient_id}", headers=citizen)
        medicine = next(
            e["resource"]["id"]
            for e in medicines.json()["entry"]
            if str(e.get("resource", {}).get("id", "")).startswith("region-nord.")
        )
        renewal = {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "for": {"reference": f"Patient/{patient_id}"},
            "focus": {"reference": f"MedicationRequest/{medicine}"},
            "owner": {"reference": "Organization/region-nord.d3629f5e-6d6f-5ee0-ab4b-2fe722d491e2"},
        }
        renewed = fhir.post(
            "/Task", json=renewal, headers=citizen | {"Idempotency-Key": "demo-renewal"}
        )
        assert renewed.status_code == 201, renewed.text

        slot = _free_slot(fhir, citizen, "vast")
        vast = _region_url(demo, "vast")
        sim = {"Authorization": "Bearer sim-vast-token"}
        httpx.put(f"{vast}/_sim/behaviour", json={"fault": "down"}, headers=sim)
        try:
            queued = fhir.post(
                "/Appointment",
                json=_booking(patient_id, slot),
                headers=citizen | {"Idempotency-Key": "demo-while-down"},
            )
            assert queued.status_code == 202, queued.text
        finally:
            httpx.put(f"{vast}/_sim/behaviour", json={"fault": "none"}, headers=sim)
        status_url = queued.headers["Content-Location"]
        for _ in range(120):
            if fhir.get(status_url, headers=citizen).status_code == 200:
                break
            time.sleep(0.5)
        assert fhir.get(status_url, headers=citizen).status_code == 200
        write_id = status_url.rsplit("/", 1)[1]
        at_region = httpx.get(
            f"{vast}/fhir/Appointment",
            params={"identifier": f"https://samlad.se/fhir/sid/write-id|{write_id}"},
            headers=sim,
        )
        assert at_region.json()["total"] == 1


def _region_url(demo: Demo, region: str) -> str:
    match = re.search(rf"^\s+{region}\s+(http://\S+)/fhir$", demo.banner, re.M)
    assert match, demo.banner
    return match.group(1)

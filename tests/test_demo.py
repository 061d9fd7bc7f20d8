"""`samlad demo` end to end, as a newcomer runs it: start, paste the printed request, stop."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from simregions.regions import DEFAULT_REGIONS

SAMLAD = [sys.executable, "-m", "gateway.cli"]


def _free_ports(count: int) -> list[int]:
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
    ports = [s.getsockname()[1] for s in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _consecutive_free_ports(count: int) -> int:
    for _ in range(50):
        base = _free_ports(1)[0]
        if base + count > 65000:
            continue
        try:
            probes = []
            for port in range(base, base + count):
                probe = socket.socket()
                probes.append(probe)
                probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
        return base
    raise RuntimeError("no free port range")


class Demo:
    def __init__(self, process: subprocess.Popen[str], banner: str, data_dir: Path) -> None:
        self.process = process
        self.banner = banner
        self.data_dir = data_dir

    @property
    def token(self) -> str:
        match = re.search(r"^export TOKEN=(\S+)$", self.banner, re.MULTILINE)
        assert match, self.banner
        return match.group(1)

    @property
    def everything_url(self) -> str:
        match = re.search(r"'(http://\S+/\$everything)'", self.banner)
        assert match, self.banner
        return match.group(1)

    @property
    def down_command(self) -> tuple[str, str]:
        match = re.search(
            r"-X PUT -H \"Authorization: Bearer (\S+)\".*?-d '.*?' (http://\S+)", self.banner, re.S
        )
        assert match, self.banner
        return match.group(1), match.group(2)


def start_demo(data_dir: Path) -> Demo:
    """Start `samlad demo` on free ports and wait for its banner."""
    regions = len(DEFAULT_REGIONS) + 1  # the FHIR regions, then Region Öst's legacy system
    region_base = _consecutive_free_ports(regions)
    port = _free_ports(1)[0]
    while region_base <= port < region_base + regions:  # a port may be handed out again
        port = _free_ports(1)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAMLAD_")}
    command = [
        *SAMLAD,
        "demo",
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        "--region-port-base",
        str(region_base),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("More tokens:"):
            break
    banner = "".join(lines)
    if "Samlad demo is running" not in banner:
        stop_demo(process)
        pytest.fail(f"demo did not start:\n{banner}")
    return Demo(process, banner, data_dir)


def stop_demo(process: subprocess.Popen[str]) -> int:
    """Ctrl-C, as a person would; kill only if it does not stop."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
    code = process.wait()
    if process.stdout is not None:
        process.stdout.close()
    return code


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    running = start_demo(tmp_path_factory.mktemp("demo") / "data")
    yield running
    stop_demo(running.process)


def _statuses(bundle: dict[str, object]) -> dict[str, str]:
    entries = bundle["entry"]
    assert isinstance(entries, list)
    (outcome,) = [e["resource"] for e in entries if e["search"]["mode"] == "outcome"]
    return {
        issue["extension"][0]["extension"][0]["valueString"]: issue["details"]["coding"][0]["code"]
        for issue in outcome["issue"]
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
    demo.process.send_signal(signal.SIGINT)
    assert demo.process.wait(timeout=15) == 0
    assert demo.process.stdout is not None
    assert "Samlad demo stopped." in demo.process.stdout.read()
    stop_demo(demo.process)
    with pytest.raises(httpx.ConnectError):
        httpx.get(demo.everything_url, timeout=2)


def test_consent_walkthrough_in_the_demo(demo: Demo) -> None:
    """The README's walkthrough: refuse, grant, read, block, withdraw, emergency, log."""
    from tests.gateway.consent_helpers import consent_body

    config = demo.data_dir / "demo.toml"
    base = demo.everything_url.rsplit("/Patient/", 1)[0]
    patient_id = demo.everything_url.rsplit("/", 2)[-2]
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
        log = fhir.get(f"/AuditEvent?patient={patient_id}", headers=citizen)
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

"""smart-fetch (PyPI, 1.0.3), an independent Bulk Data and FHIR crawl client, run unchanged
as a subprocess against the gateway served by a real uvicorn on loopback. It logs in as a
backend client of the development authorization server (``private_key_jwt`` with a JWKS
file, the token URL found by SMART discovery) acting for Region Nord; five people have
records there and the first three consent to Nord. Its ``bulk`` (Group and system level),
``crawl`` and managed ``export`` each finish and write exactly the consenting patients'
data: per type as many resources as a raw search as the same client finds.

Every type smart-fetch knows is run (each command takes a few seconds with five people), on
SQLite and on PostgreSQL."""

from __future__ import annotations

import gzip
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy import create_engine, make_url, text

from gateway.run.dev_issuer import dev_token
from tests.conftest import IssuerKit
from tests.gateway.conftest import NORD_PROVIDER, Region
from tests.gateway.consent_helpers import consent_body
from tests.gateway.smart_helpers import APP, Served, served_dev_gateway

#: Five adults with records in Region Nord; the first three consent to Nord.
PEOPLE = ["198803741035", "198107281563", "199003277812", "194003029818", "197904105082"]
CLIENT = "smart-fetch-nord"
GROUP = f"consented-{NORD_PROVIDER}"
SMART_FETCH = Path(sys.executable).parent / "smart-fetch"
#: What smart-fetch asks of Observations unless told otherwise (its default `_typeFilter`,
#: and the same `category` search when it crawls).
OBSERVATION_CATEGORIES = (
    "social-history,vital-signs,imaging,laboratory,survey,exam,procedure,therapy,activity"
)
#: Types smart-fetch reads by reference (hydration), about no patient.
REFERENCED = {"Practitioner", "PractitionerRole", "Organization", "Location"}
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class Nord:
    served: Served
    folder: Path
    key: ECKey
    key_file: Path
    consenting: list[str]
    others: list[str]

    @property
    def fhir(self) -> str:
        return self.served.settings.fhir_base_url


def _backend_key(folder: Path) -> tuple[ECKey, Path, Path]:
    """The client's key pair: the public JWKS the gateway registers, and the private one
    smart-fetch signs with (a ``.jwks`` file whose key names its ``alg`` and ``sign``)."""
    key = ECKey.generate_key("P-384", parameters={"kid": "smart-fetch-1"})
    public = folder / "smart-fetch-public.json"
    public.write_bytes(orjson.dumps({"keys": [key.as_dict(private=False)]}))
    private = folder / "smart-fetch.jwks"
    signing = {**key.as_dict(private=True), "alg": "ES384", "key_ops": ["sign"]}
    private.write_bytes(orjson.dumps({"keys": [signing]}))
    return key, public, private


def _consent(served: Served) -> tuple[list[str], list[str]]:
    """Each person finds their patient id; the first three consent to Nord."""
    consenting, others = [], []
    with httpx.Client(base_url=served.settings.fhir_base_url) as fhir:
        for index, person in enumerate(PEOPLE):
            claims = {"personnummer": person, "scope": "patient/*.rs patient/Consent.cu"}
            headers = {"Authorization": f"Bearer {dev_token(served.settings, claims)}"}
            found = fhir.post(
                "/Patient/_search",
                data={"identifier": f"http://electronichealth.se/identifier/personnummer|{person}"},
                headers=headers,
            )
            assert found.status_code == 200, found.text
            patient_id = found.json()["entry"][0]["resource"]["id"]
            if index < 3:
                granted = fhir.post(
                    "/Consent", json=consent_body(patient_id, NORD_PROVIDER), headers=headers
                )
                assert granted.status_code == 201, granted.text
                consenting.append(patient_id)
            else:
                others.append(patient_id)
    return consenting, others


def _sync_url(url: str) -> str:
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _emptied(url: str) -> None:
    """Every table of the session's PostgreSQL database emptied, for the tests after."""
    engine = create_engine(_sync_url(url))
    with engine.begin() as conn:
        tables = conn.execute(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename <> 'alembic_version'"
            )
        ).scalars()
        conn.execute(text(f"TRUNCATE {', '.join(tables)}"))
    engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def nord(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    issuer: IssuerKit,
    regions: dict[str, Region],
) -> Iterator[Nord]:
    folder = tmp_path_factory.mktemp("smart-fetch")
    database: dict[str, str] = {}
    if request.param == "postgresql":
        database["database_url"] = request.getfixturevalue("postgres_url")
    key, public, private = _backend_key(folder)
    clients = [
        {"client_id": APP, "redirect_uris": ["http://127.0.0.1:8000/app/"], "scopes": []},
        {
            "client_id": CLIENT,
            "scopes": ["system/*.rs"],
            "jwks_file": str(public),
            "care_provider_hsa_id": NORD_PROVIDER,
        },
    ]
    # No rate limits: how many requests a second smart-fetch makes depends on the machine.
    try:
        with served_dev_gateway(
            folder, issuer, regions, oauth_clients=clients, rate_limit_enabled=False, **database
        ) as served:
            consenting, others = _consent(served)
            yield Nord(served, folder, key, private, consenting, others)
    finally:
        if database:
            _emptied(database["database_url"])


def smart_fetch(nord: Nord, command: str, *args: str) -> Path:
    """Run smart-fetch ``command`` into a new folder; it must exit 0."""
    out = nord.folder / f"{command}-{uuid.uuid4().hex[:8]}"
    run = subprocess.run(
        [
            str(SMART_FETCH),
            command,
            "--fhir-url",
            nord.fhir,
            "--smart-client-id",
            CLIENT,
            "--smart-key",
            str(nord.key_file),
            *args,
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    return out


def written(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """Every resource smart-fetch wrote into ``folder`` (not its subfolders), by type; the
    crawl's ``error`` folder (the searches' per-source status outcomes) is left out."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for file in sorted(folder.glob("*.ndjson.gz")):
        for line in gzip.decompress(file.read_bytes()).splitlines():
            resource = orjson.loads(line)
            by_type.setdefault(resource["resourceType"], []).append(resource)
    return by_type


def integrator_headers(nord: Nord) -> dict[str, str]:
    """A token of the same client, got the way smart-fetch gets one."""
    now = int(time.time())
    token_url = f"{nord.served.public}/dev-issuer/token"
    claims = {"iss": CLIENT, "sub": CLIENT, "aud": token_url, "iat": now, "exp": now + 300}
    signed = jwt.encode(
        {"alg": "ES384", "kid": nord.key.kid},
        {**claims, "jti": uuid.uuid4().hex},
        nord.key,
        algorithms=["ES384"],
    )
    form = {
        "grant_type": "client_credentials",
        "scope": "system/*.rs",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": signed,
    }
    answer = httpx.post(token_url, data=form)
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def searched_counts(nord: Nord, types: set[str]) -> Counter[str]:
    """Per type, how many resources of the consenting patients a raw type search as the
    integrator finds (the exact total; Observations of smart-fetch's categories)."""
    counts: Counter[str] = Counter()
    headers = integrator_headers(nord)
    with httpx.Client(base_url=nord.fhir, headers=headers) as fhir:
        for kind in sorted(types - {"Patient"}):
            for patient_id in nord.consenting:
                params = {"patient": patient_id, "_total": "accurate", "_count": "1"}
                if kind == "Observation":
                    params["category"] = OBSERVATION_CATEGORIES
                found = fhir.get(f"/{kind}", params=params)
                assert found.status_code == 200, found.text
                counts[kind] += found.json()["total"]
    return counts


def assert_only_the_consenting(nord: Nord, folder: Path) -> dict[str, list[dict[str, Any]]]:
    """The Patients written are exactly the consenting ones, every patient resource names
    one of them, and no file (referenced resources and logs too) names anyone else."""
    by_type = written(folder)
    assert sorted(p["id"] for p in by_type["Patient"]) == sorted(nord.consenting)
    allowed = {f"Patient/{p}" for p in nord.consenting}
    for kind, resources in by_type.items():
        if kind in REFERENCED or kind == "Patient":
            continue
        for resource in resources:
            named = resource.get("subject") or resource.get("patient")
            assert named is not None, kind
            assert named["reference"] in allowed, (kind, named)
    everything = b"".join(
        gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes()
        for f in folder.rglob("*")
        if f.is_file()
    )
    for patient_id in nord.others:
        assert patient_id.encode() not in everything
    for person in PEOPLE[3:]:
        assert person.encode() not in everything
        assert person[2:].encode() not in everything
    return by_type


def assert_counts_as_searched(nord: Nord, by_type: dict[str, list[dict[str, Any]]]) -> None:
    patient_types = set(by_type) - REFERENCED
    assert len(patient_types) > 3, "more than Patients: their records"
    expected = searched_counts(nord, patient_types)
    got = Counter({k: len(v) for k, v in by_type.items() if k in patient_types - {"Patient"}})
    assert got == expected
    for resources in by_type.values():
        ids = [r["id"] for r in resources]
        assert len(ids) == len(set(ids)), "each resource once"


def export_log(nord: Nord) -> list[tuple[str, str, str]]:
    """The access log's export entries: patient, client, outcome."""
    engine = create_engine(_sync_url(nord.served.settings.database_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT patient_id, actor_id, outcome FROM audit_entry"
                    " WHERE action = 'export' ORDER BY seq"
                )
            ).all()
    finally:
        engine.dispose()
    return [(str(p), str(a), str(o)) for p, a, o in rows]


def assert_exports_logged(nord: Nord, before: int) -> None:
    """The export this test ran read every consenting patient, and only them, and each
    read is in that patient's access log as an export by the client."""
    rows = export_log(nord)[before:]
    assert sorted(p for p, _, _ in rows) == sorted(nord.consenting)
    assert {(a, o) for _, a, o in rows} == {(CLIENT, "allowed")}


@pytest.mark.parametrize("cohort", [["--group", GROUP], []], ids=["group", "system"])
def test_bulk_writes_exactly_the_consenting_patients(nord: Nord, cohort: list[str]) -> None:
    before = len(export_log(nord))
    out = smart_fetch(nord, "bulk", *cohort)
    by_type = assert_only_the_consenting(nord, out)
    assert_counts_as_searched(nord, by_type)
    assert_exports_logged(nord, before)


def test_crawl_writes_exactly_the_consenting_patients(nord: Nord) -> None:
    before = len(export_log(nord))
    out = smart_fetch(nord, "crawl", "--group", GROUP)
    by_type = assert_only_the_consenting(nord, out)
    assert_counts_as_searched(nord, by_type)
    # The crawl finds its patients with a Patient export, then searches type by type.
    assert_exports_logged(nord, before)


def test_managed_export_writes_and_reads_references_as_the_integrator(nord: Nord) -> None:
    before = len(export_log(nord))
    out = smart_fetch(nord, "export", "--group", GROUP)
    by_type = assert_only_the_consenting(nord, out)
    assert_counts_as_searched(nord, by_type)
    assert_exports_logged(nord, before)
    # Hydration read every Practitioner the records name (GET Practitioner/{source}.{id}).
    named = {
        ref
        for kind, resources in by_type.items()
        if kind not in REFERENCED
        for ref in _references(resources)
        if ref.startswith("Practitioner/")
    }
    assert named
    assert {f"Practitioner/{p['id']}" for p in by_type["Practitioner"]} == named


def _references(resources: list[dict[str, Any]]) -> Iterator[str]:
    """Every ``reference`` anywhere in the resources."""
    stack: list[Any] = list(resources)
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("reference"), str):
                yield item["reference"]
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def test_a_search_of_a_referenced_type_is_refused_as_an_outcome(nord: Nord) -> None:
    """smart-fetch's ``export`` also searches ``PractitionerRole?practitioner=`` for every
    Practitioner it read (its ``pract-practrole`` task). Referenced types are read by id
    only (the CapabilityStatement says so), so each such search is an OperationOutcome,
    which smart-fetch counts as an error and finishes anyway."""
    headers = integrator_headers(nord)
    with httpx.Client(base_url=nord.fhir, headers=headers) as fhir:
        interactions = {
            r["type"]: {i["code"] for i in r.get("interaction", [])}
            for r in fhir.get("/metadata").json()["rest"][0]["resource"]
        }
        searched = fhir.get("/PractitionerRole", params={"practitioner": "region-nord.x"})
    assert {t: interactions[t] for t in REFERENCED} == {t: {"read"} for t in REFERENCED}
    assert searched.status_code == 404
    assert searched.json()["resourceType"] == "OperationOutcome"

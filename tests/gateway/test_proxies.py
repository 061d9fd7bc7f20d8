"""Acting for another adult: a proxy by the person's grant, or a legal representative.

The proxy logs in as themselves, lists whom they may act for, and reads exactly what the
grant covers of what the person sees; every read is in the person's log as the proxy's,
on their behalf. Who may do what on every endpoint is in the access matrix
(``test_access_matrix.py``, the ``proxy`` rows); these tests follow one person through.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.conftest import IssuerKit
from tests.gateway.conftest import (
    PROXY,
    REPRESENTATIVE,
    REPRESENTED,
    TEST_PERSON,
    Gateway,
    Region,
    every_entry,
)
from tests.gateway.consent_helpers import (
    consent_body,
    deactivate,
    grant_proxy,
    proxy_body,
    seal,
    seal_body,
)
from tests.gateway.smart_helpers import (
    APP,
    APP_REDIRECT,
    DevGateway,
    authorize_params,
    dev_gateway,
    hidden_fields,
    pkce,
    query_of,
)
from tests.gateway.test_own_data import blood_pressure

pytestmark = pytest.mark.anyio

LAB_AND_MEDICINES = ("medicines", "lab-results")
#: An adult who is neither the person nor their proxy.
OTHER_ADULT = "198107281563"
#: What a grant for medicines and lab results covers.
COVERED = {"Patient", "MedicationRequest", "MedicationDispense", "Observation", "DiagnosticReport"}
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
AUTHORIZE, TOKEN_URL = "/dev-issuer/authorize", "/dev-issuer/token"
ON_BEHALF_OF = "https://samlad.se/fhir/StructureDefinition/on-behalf-of"


def _matches(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["resource"] for e in entries if e.get("search", {}).get("mode") == "match"]


def _categories(observation: dict[str, Any]) -> set[str]:
    return {
        coding["code"]
        for category in observation.get("category", [])
        for coding in category.get("coding", [])
        if coding.get("system") == OBSERVATION_CATEGORY
    }


async def test_a_proxy_reads_only_the_granted_categories_and_the_person_sees_it(
    gateway: Gateway,
) -> None:
    tolvan = await gateway.patient_id()
    own = await every_entry(gateway, f"/fhir/Patient/{tolvan}/$everything", gateway.citizen())
    own_types = {r["resourceType"] for r in _matches(own)}
    assert {"Condition", "Encounter"} <= own_types, "the person has more than the grant covers"
    assert any(_categories(r) == {"vital-signs"} for r in _matches(own))

    await grant_proxy(gateway, tolvan, PROXY, categories=LAB_AND_MEDICINES)
    proxy = gateway.citizen(PROXY)

    # The proxy lists whom they may act for: themselves, then Tolvan.
    listed = await gateway.client.get("/fhir/Patient", headers=proxy)
    assert listed.status_code == 200, listed.text
    ids = [r["id"] for r in _matches(listed.json()["entry"])]
    assert ids[1:] == [tolvan]
    assert ids[0] != tolvan

    seen = _matches(await every_entry(gateway, f"/fhir/Patient/{tolvan}/$everything", proxy))
    types = {r["resourceType"] for r in seen}
    assert types <= COVERED
    assert {"Patient", "MedicationRequest", "Observation"} <= types
    observations = [r for r in seen if r["resourceType"] == "Observation"]
    assert all("laboratory" in _categories(o) for o in observations)
    own_labs = [
        r
        for r in _matches(own)
        if r["resourceType"] == "Observation" and "laboratory" in _categories(r)
    ]
    assert len(observations) == len(own_labs), "every lab result the person sees, nothing else"

    refused = await gateway.client.get(f"/fhir/Condition?patient={tolvan}", headers=proxy)
    assert refused.status_code == 403
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert TEST_PERSON not in refused.text
    assert PROXY not in refused.text

    # Tolvan's log names the proxy's reads: as the proxy, on his behalf.
    log = await gateway.client.get(f"/fhir/AuditEvent?patient={tolvan}", headers=gateway.citizen())
    assert log.status_code == 200
    assert PROXY not in log.text
    assert TEST_PERSON not in log.text
    by_proxy = [
        e["resource"]
        for e in log.json()["entry"]
        if any(
            c["code"] == "proxy"
            for a in e["resource"]["agent"]
            for r in a.get("role", [])
            for c in r["coding"]
        )
    ]
    assert len(by_proxy) == 3  # the listing's Patient read, $everything, the refusal
    requestor = next(a for a in by_proxy[0]["agent"] if a.get("requestor"))
    (behalf,) = [x for x in requestor["extension"] if x["url"] == ON_BEHALF_OF]
    assert behalf["valueIdentifier"]["value"] == tolvan
    assert requestor["who"]["reference"] != f"Patient/{tolvan}"


async def test_a_proxy_never_manages_the_persons_choices_unless_the_grant_says_so(
    gateway: Gateway,
) -> None:
    tolvan = await gateway.patient_id()
    await grant_proxy(gateway, tolvan, PROXY)
    proxy = gateway.citizen(PROXY)
    assert (await gateway.client.get(f"/fhir/Patient/{tolvan}", headers=proxy)).status_code == 200
    for response in (
        await gateway.client.get(f"/fhir/Consent?patient={tolvan}", headers=proxy),
        await gateway.client.get(f"/fhir/AuditEvent?patient={tolvan}", headers=proxy),
        await gateway.client.post(
            "/fhir/Consent", json=consent_body(tolvan, "SE2321009001-NORD"), headers=proxy
        ),
        await gateway.client.post(
            "/fhir/Consent", json=proxy_body(tolvan, "198107281563"), headers=proxy
        ),
    ):
        assert response.status_code == 403, response.text
    await grant_proxy(gateway, tolvan, PROXY, manages=True)
    consents = await gateway.client.get(f"/fhir/Consent?patient={tolvan}", headers=proxy)
    assert consents.status_code == 200
    grants = [r for r in _matches(consents.json()["entry"]) if "class" not in r["provision"]]
    assert any(
        a["code"] == "correct"
        for r in grants
        for x in r["provision"]["action"]
        for a in x["coding"]
    )


async def test_a_proxy_who_manages_never_seals_nor_grants_a_proxy(
    gateway: Gateway,
) -> None:
    """A seal protects the person from being made to show their record, to a proxy too;
    and proxies are the person's to grant, not a proxy's (not even to widen their own)."""
    tolvan = await gateway.patient_id()
    sealed = await seal(gateway, tolvan, hsa_id="SE2321009003-SYD0")
    await grant_proxy(gateway, tolvan, PROXY, manages=True, categories=("medicines",))
    proxy = gateway.citizen(PROXY)
    lifted = {"resourceType": "Consent", "id": sealed, "status": "inactive"}
    lift = await gateway.client.put(f"/fhir/Consent/{sealed}", json=lifted, headers=proxy)
    assert lift.status_code == 403, lift.text
    new_seal = seal_body(tolvan, hsa_id="SE2321009001-NORD")
    made = await gateway.client.post("/fhir/Consent", json=new_seal, headers=proxy)
    assert made.status_code == 403, made.text
    wider = await gateway.client.post(
        "/fhir/Consent", json=proxy_body(tolvan, PROXY), headers=proxy
    )
    assert wider.status_code == 403, wider.text
    assert PROXY not in wider.text
    # Nor grants anyone else: that grant could pass on more than their own, and come back.
    other = await gateway.client.post(
        "/fhir/Consent", json=proxy_body(tolvan, OTHER_ADULT), headers=proxy
    )
    assert other.status_code == 403, other.text
    assert OTHER_ADULT not in other.text
    await deactivate(gateway, sealed)  # the person still may


async def test_an_expired_grant_gives_nothing_from_the_moment_it_ends(gateway: Gateway) -> None:
    tolvan = await gateway.patient_id()
    now = datetime.now(UTC)
    end = (now + timedelta(days=1)).isoformat(timespec="seconds")
    await grant_proxy(gateway, tolvan, PROXY, end=end)
    proxy = gateway.citizen(PROXY)
    read = f"/fhir/MedicationRequest?patient={tolvan}"
    assert (await gateway.client.get(read, headers=proxy)).status_code == 200
    gateway.services.clock = lambda: now + timedelta(days=1, seconds=1)
    expired = await gateway.client.get(read, headers=proxy)
    assert expired.status_code == 403
    assert expired.json()["resourceType"] == "OperationOutcome"
    listed = await gateway.client.get("/fhir/Patient", headers=proxy)
    assert tolvan not in [r["id"] for r in _matches(listed.json()["entry"])]
    # The grant reads as inactive to the person.
    consents = await gateway.client.get(
        f"/fhir/Consent?patient={tolvan}", headers=gateway.citizen()
    )
    assert [r["status"] for r in _matches(consents.json()["entry"])] == ["inactive"]


async def test_a_withdrawn_grant_stops_the_next_read(gateway: Gateway) -> None:
    tolvan = await gateway.patient_id()
    grant_id = await grant_proxy(gateway, tolvan, PROXY)
    proxy = gateway.citizen(PROXY)
    read = f"/fhir/Patient/{tolvan}/$summary"
    assert (await gateway.client.get(read, headers=proxy)).status_code == 200
    await deactivate(gateway, grant_id)
    assert (await gateway.client.get(read, headers=proxy)).status_code == 403
    log = await gateway.client.get(f"/fhir/AuditEvent?patient={tolvan}", headers=gateway.citizen())
    actions = [
        c["code"]
        for e in log.json()["entry"]
        for c in e["resource"]["subtype"]
        if c["system"].endswith("audit-action")
    ]
    assert "proxy-create" in actions
    assert "proxy-withdraw" in actions


async def test_a_legal_representative_reads_as_the_person_sees_and_manages_nothing(
    gateway: Gateway,
) -> None:
    represented = await gateway.patient_id(REPRESENTED)
    representative = gateway.citizen(REPRESENTATIVE)
    listed = await gateway.client.get("/fhir/Patient", headers=representative)
    assert represented in [r["id"] for r in _matches(listed.json()["entry"])]
    everything = await every_entry(
        gateway, f"/fhir/Patient/{represented}/$everything", representative
    )
    own = await every_entry(
        gateway, f"/fhir/Patient/{represented}/$everything", gateway.citizen(REPRESENTED)
    )
    assert len(_matches(everything)) == len(_matches(own))
    refused = await gateway.client.get(
        f"/fhir/Consent?patient={represented}", headers=representative
    )
    assert refused.status_code == 403
    # Nobody else is represented by them.
    tolvan = await gateway.patient_id()
    assert (
        await gateway.client.get(f"/fhir/Patient/{tolvan}", headers=representative)
    ).status_code == 403


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda b: b["provision"]["actor"][0]["reference"]["identifier"].update(value="1"),
            "personnummer",
        ),
        (lambda b: b["provision"].update({"class": [{"system": "x", "code": "y"}]}), "class"),
        (lambda b: b["provision"].update(type="deny"), "permit"),
    ],
)
async def test_a_bad_grant_is_422_and_never_repeats_the_number(
    gateway: Gateway, change: Any, message: str
) -> None:
    tolvan = await gateway.patient_id()
    body = proxy_body(tolvan, PROXY)
    change(body)
    response = await gateway.client.post("/fhir/Consent", json=body, headers=gateway.citizen())
    assert response.status_code == 422, response.text
    assert message in response.text
    assert PROXY not in response.text


async def test_a_proxy_is_an_adult(gateway: Gateway) -> None:
    tolvan = await gateway.patient_id()
    child = "201605121936"  # ten years old on any day the suite runs
    body = proxy_body(tolvan, child)
    response = await gateway.client.post("/fhir/Consent", json=body, headers=gateway.citizen())
    assert response.status_code == 422
    assert "adult" in response.text
    assert child not in response.text


async def test_nobody_is_their_own_proxy(gateway: Gateway) -> None:
    tolvan = await gateway.patient_id()
    body = proxy_body(tolvan, TEST_PERSON)
    response = await gateway.client.post("/fhir/Consent", json=body, headers=gateway.citizen())
    assert response.status_code == 422
    assert TEST_PERSON not in response.text


async def test_the_proxy_picks_whose_record_at_login(
    tmp_path: Path,
    issuer: IssuerKit,
    regions: dict[str, Region],
    guardian_register: Path,
    database_url: str,
) -> None:
    """The SMART login lets a proxy choose among those they may act for; the token's
    ``patient`` launch context is the person chosen, while the proxy stays who they are."""
    async with dev_gateway(
        tmp_path,
        issuer,
        regions,
        database_url=database_url,
        guardian_registers=[{"file": str(guardian_register)}],
    ) as dev:
        tolvan_token, tolvan = await _smart_login(dev, TEST_PERSON)
        grant = await dev.client.post(
            "/fhir/Consent",
            json=proxy_body(tolvan, PROXY, categories=LAB_AND_MEDICINES),
            headers={"Authorization": f"Bearer {tolvan_token}"},
        )
        assert grant.status_code == 201, grant.text
        token, patient = await _smart_login(dev, PROXY, pick=tolvan)
        assert patient == tolvan
        headers = {"Authorization": f"Bearer {token}"}
        read = await dev.client.get(f"/fhir/MedicationRequest?patient={patient}", headers=headers)
        assert read.status_code == 200
        refused = await dev.client.get(f"/fhir/Condition?patient={patient}", headers=headers)
        assert refused.status_code == 403
        # Picking someone they may not act for opens their own record instead.
        _, own = await _smart_login(dev, PROXY, pick="someone-else")
        assert own not in (tolvan, "someone-else")


async def _smart_login(dev: DevGateway, person: str, pick: str | None = None) -> tuple[str, str]:
    """Log ``person`` in through the development login (choosing ``pick``'s record when
    offered); their access token and the token's ``patient``."""
    verifier, challenge = pkce()
    page = await dev.client.get(f"{AUTHORIZE}?{urlencode(authorize_params(challenge))}")
    fields = hidden_fields(page.text) | {"role": "citizen", "person": person}
    consent = await dev.client.post(AUTHORIZE, data=fields)
    assert consent.status_code == 200, consent.text
    if pick is not None:
        assert 'name="patient"' in consent.text
        assert "Tolvan" in consent.text
    chosen = {"patient": pick} if pick else {}
    answer = await dev.client.post(
        AUTHORIZE, data={**hidden_fields(consent.text), **chosen, "decision": "allow"}
    )
    assert answer.status_code == 302, answer.text
    code = query_of(answer.headers["location"])["code"]
    form = {
        "grant_type": "authorization_code",
        "client_id": APP,
        "code": code,
        "redirect_uri": APP_REDIRECT,
        "code_verifier": verifier,
    }
    token = (await dev.client.post(TOKEN_URL, data=form)).json()
    return token["access_token"], token["patient"]


async def test_a_proxy_is_not_told_the_person_recorded_what_the_grant_does_not_cover(
    gateway: Gateway,
) -> None:
    """The person's own source is asked only when it holds something: its status entry,
    even counting nothing shown, would tell a proxy for lab results that the person
    recorded a measurement."""
    tolvan = await gateway.patient_id()
    await grant_proxy(gateway, tolvan, PROXY, categories=("lab-results",))
    search = f"/fhir/Observation?patient={tolvan}&_count=1000"

    async def names_own_source(headers: dict[str, str]) -> bool:
        response = await gateway.client.get(search, headers=headers)
        assert response.status_code == 200, response.text
        return "patient-reported" in response.text

    assert not await names_own_source(gateway.citizen(PROXY))
    made = await gateway.client.post(
        "/fhir/Observation", json=blood_pressure(tolvan), headers=gateway.citizen()
    )
    assert made.status_code == 201, made.text
    assert not await names_own_source(gateway.citizen(PROXY))
    assert await names_own_source(gateway.citizen()), "the person is shown their own source"

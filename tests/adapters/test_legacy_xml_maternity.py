"""LegacyXmlAdapter on GetMaternityMedicalHistory: the antenatal registration and check-ups
as Observations with LOINC codes, the blood pressure as a panel, hostile records."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from adapters.errors import SourceProtocolError
from fhir_profiles.identifiers import PersonIdentifier
from simregions.legacy.contracts import GET_FUNCTIONAL_STATUS, GET_MATERNITY_MEDICAL_HISTORY
from simregions.legacy.records import build_legacy_data
from simregions.legacy.records.maternity import EXPECTING_PNR
from simregions.legacy.spec import OST
from simregions.legacy.wire import laboratory_response
from simregions.legacy.wire_outcomes import maternity_response
from simregions.legacy.wire_plans import functional_status_response
from simregions.people import all_people
from tests.adapters.test_legacy_xml import (
    APPROVAL,
    DEMO_URL,
    LAB_URL,
    NULLIFIED,
    adapter,
    demographics,
    xml,
)
from tests.adapters.test_legacy_xml_overview import url, variants

pytestmark = pytest.mark.anyio

EXPECTING = PersonIdentifier(EXPECTING_PNR)


def records() -> Any:
    return build_legacy_data(OST).records[EXPECTING_PNR].overview.maternity


async def observations(
    router: respx.Router, client: httpx.AsyncClient, body: bytes
) -> tuple[Any, str]:
    """An adapter that has found the expecting woman, with ``body`` as her maternity
    records and no lab results or functional status."""
    router.post(DEMO_URL).mock(return_value=xml(demographics(EXPECTING)))
    router.post(LAB_URL).mock(return_value=xml(laboratory_response(OST, EXPECTING_PNR, ())))
    router.post(url(GET_FUNCTIONAL_STATUS)).mock(
        return_value=xml(functional_status_response(OST, EXPECTING_PNR, ()))
    )
    router.post(url(GET_MATERNITY_MEDICAL_HISTORY)).mock(return_value=xml(body))
    source = adapter(client)
    patient = await source.find_patient(EXPECTING)
    assert patient is not None
    return source, patient["id"]


def test_the_one_expecting_is_a_woman_of_an_age_to_bear_children() -> None:
    person = next(p for p in all_people() if p.pnr == EXPECTING_PNR)
    assert person.sex == "female"
    assert 18 <= person.age <= 45
    assert records(), "she is in Öst's journal with her maternity care"


async def test_registration_and_checkups_become_loinc_coded_observations(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    source, patient_id = await observations(
        router, mock_client, maternity_response(OST, EXPECTING_PNR, records())
    )
    found = await source.search("Observation", patient_id)
    by_code: dict[str, list[dict[str, Any]]] = {}
    for observation in found:
        by_code.setdefault(observation["code"]["coding"][0]["code"], []).append(observation)
    assert by_code["8665-2"][0]["valueDateTime"] == "2026-03-02"
    assert by_code["11779-6"][0]["valueDateTime"] == "2026-12-07"
    assert by_code["8302-2"][0]["valueQuantity"] == {
        "value": 168,
        "unit": "cm",
        "system": "http://unitsofmeasure.org",
        "code": "cm",
    }
    weeks = sorted(o["valueQuantity"]["value"] for o in by_code["49051-6"])
    assert weeks == [25, 29, 30, 32]
    [panel, *_] = by_code["85354-9"]
    assert [c["code"]["coding"][0]["code"] for c in panel["component"]] == ["8480-6", "8462-4"]
    assert panel["component"][0]["valueQuantity"]["code"] == "mm[Hg]"
    assert panel["category"][0]["coding"][0]["code"] == "vital-signs"
    assert by_code["718-7"][0]["category"][0]["coding"][0]["code"] == "laboratory"
    assert by_code["11881-4"][0]["valueQuantity"]["value"] == 24.5
    assert all(o["category"][1] == {"text": "Mödrahälsovård"} for o in found)
    assert len({o["id"] for o in found}) == len(found)

    def flags(observation: dict[str, Any]) -> list[str]:
        tags = observation["meta"]["tag"]
        return [t["code"] for t in tags if t["system"] in (APPROVAL, NULLIFIED)]

    assert ["false"] in [flags(o) for o in by_code["49051-6"]], "week 32 not yet approved"
    assert ["true", "true"] in [flags(o) for o in by_code["49051-6"]], "the nullified check-up"


async def test_unknown_units_keep_their_text_and_bad_numbers_are_refused(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    body = maternity_response(OST, EXPECTING_PNR, records()[:2])
    odd = body.replace(b">cm<", b">tum<", 1)
    source, patient_id = await observations(router, mock_client, odd)
    height = next(
        o for o in await source.search("Observation", patient_id) if o["code"]["text"] == "Längd"
    )
    assert height["valueQuantity"] == {"value": 168, "unit": "tum"}
    router.post(url(GET_MATERNITY_MEDICAL_HISTORY)).mock(
        return_value=xml(body.replace(b">168<", b">long<"))
    )
    with pytest.raises(SourceProtocolError, match="not a number"):
        await source.search("Observation", patient_id)


async def test_hostile_maternity_records_never_crash(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    body = maternity_response(OST, EXPECTING_PNR, records()[1:2])
    current = [body]
    source, patient_id = await observations(router, mock_client, body)
    router.post(url(GET_MATERNITY_MEDICAL_HISTORY)).mock(side_effect=lambda r: xml(current[0]))
    answered, refusals = 0, []
    for variant in variants(
        body, "maternityMedicalRecord", GET_MATERNITY_MEDICAL_HISTORY.responder_ns
    ):
        current[:] = [variant]
        try:
            found = await source.search("Observation", patient_id)
        except SourceProtocolError as refused:
            refusals.append(str(refused))
            continue
        json.dumps(found)
        answered += 1
    assert answered
    assert refusals
    assert not [text for text in refusals if EXPECTING_PNR in text]

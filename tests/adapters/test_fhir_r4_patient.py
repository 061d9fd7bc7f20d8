"""FhirR4Adapter.find_patient: identifier systems and formats, POST vs GET, ambiguity."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from hypothesis import given
from hypothesis import strategies as st

from adapters.errors import SourceProtocolError
from adapters.fhir_r4 import FhirR4Adapter, format_identifier
from fhir_profiles.identifiers import (
    PERSONNUMMER_SYSTEM,
    SAMORDNINGSNUMMER_SYSTEM,
    PersonIdentifier,
    luhn_check_digit,
    parse_person_identifier,
)
from tests.adapters.adapter_fakes import (
    BASE,
    TOLVAN,
    fhir_response,
    make_config,
    make_person,
    patient,
    resource,
    searchset,
    sent_urls,
)

pytestmark = pytest.mark.anyio

SEARCH = f"{BASE}/Patient/_search"
TODAY = date(2026, 11, 22)


def adapter(client: httpx.AsyncClient, **dialect: Any) -> FhirR4Adapter:
    return FhirR4Adapter(make_config(**dialect), client, today=lambda: TODAY)


def form_of(request: httpx.Request) -> dict[str, list[str]]:
    return parse_qs(request.content.decode())


async def test_post_search_keeps_the_personnummer_out_of_every_url(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    route = router.post(SEARCH).mock(return_value=fhir_response(searchset(patient("p1", TOLVAN))))
    found = await adapter(mock_client).find_patient(TOLVAN)
    assert found is not None
    assert found["id"] == "p1"
    request = route.calls.last.request
    assert form_of(request) == {
        "identifier": [f"{PERSONNUMMER_SYSTEM}|191212121212"],
        "_count": ["2"],
    }
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.headers["Accept"] == "application/fhir+json"
    for url in sent_urls(router):
        assert "121212" not in url
        assert "?" not in url


async def test_get_search_when_the_dialect_says_so(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    route = router.get(f"{BASE}/Patient").mock(
        return_value=fhir_response(searchset(patient("p1", TOLVAN)))
    )
    found = await adapter(mock_client, patient_search="get").find_patient(TOLVAN)
    assert found is not None
    assert found["id"] == "p1"
    params = route.calls.last.request.url.params
    assert params["identifier"] == f"{PERSONNUMMER_SYSTEM}|191212121212"
    assert route.calls.last.request.method == "GET"


async def test_no_match_is_none(router: respx.Router, mock_client: httpx.AsyncClient) -> None:
    router.post(SEARCH).mock(return_value=fhir_response(searchset(total=0)))
    assert await adapter(mock_client).find_patient(TOLVAN) is None


async def test_two_matches_are_never_guessed_between(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    router.post(SEARCH).mock(
        return_value=fhir_response(searchset(patient("p1", TOLVAN), patient("p2", TOLVAN)))
    )
    with pytest.raises(SourceProtocolError, match="more than one Patient") as caught:
        await adapter(mock_client).find_patient(TOLVAN)
    assert "121212" not in str(caught.value)


async def test_total_above_one_is_ambiguous_even_with_one_entry(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    router.post(SEARCH).mock(return_value=fhir_response(searchset(patient("p1", TOLVAN), total=3)))
    with pytest.raises(SourceProtocolError, match="more than one Patient"):
        await adapter(mock_client).find_patient(TOLVAN)


async def test_a_paged_patient_search_is_not_followed(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    # The next link would carry the identifier in its query string.
    next_url = f"{BASE}/Patient?identifier=x%7C191212121212&_offset=1"
    router.post(SEARCH).mock(
        return_value=fhir_response(searchset(patient("p1", TOLVAN), next_url=next_url))
    )
    with pytest.raises(SourceProtocolError, match="several pages"):
        await adapter(mock_client).find_patient(TOLVAN)
    assert len(router.calls) == 1


async def test_a_match_without_the_searched_identifier_is_refused(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    stranger = make_person("19700101", "234")
    router.post(SEARCH).mock(return_value=fhir_response(searchset(patient("p9", stranger))))
    with pytest.raises(SourceProtocolError, match="does not carry the searched identifier"):
        await adapter(mock_client).find_patient(TOLVAN)


async def test_included_and_outcome_entries_do_not_count_as_matches(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    bundle = searchset(
        patient("p1", TOLVAN),
        extra=(
            {"resource": patient("p2", TOLVAN), "search": {"mode": "include"}},
            {"resource": resource("Organization", "org1"), "search": {"mode": "include"}},
            {
                "resource": resource("OperationOutcome", None, issue=[{"severity": "warning"}]),
                "search": {"mode": "outcome"},
            },
        ),
    )
    router.post(SEARCH).mock(return_value=fhir_response(bundle))
    found = await adapter(mock_client).find_patient(TOLVAN)
    assert found is not None
    assert found["id"] == "p1"


async def test_samordningsnummer_uses_its_own_system(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    person = make_person("19800175", "321")  # day 15 + 60
    assert person.is_samordningsnummer
    route = router.post(SEARCH).mock(return_value=fhir_response(searchset(patient("s1", person))))
    assert await adapter(mock_client).find_patient(person) is not None
    assert form_of(route.calls.last.request)["identifier"] == [
        f"{SAMORDNINGSNUMMER_SYSTEM}|{person.value}"
    ]


async def test_a_local_identifier_system_is_used_for_everyone(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    local = "urn:oid:1.2.752.99999.1"
    person = make_person("19800175", "321")
    route = router.post(SEARCH).mock(
        return_value=fhir_response(searchset(patient("s1", person, system=local)))
    )
    found = await adapter(mock_client, identifier_system=local).find_patient(person)
    assert found is not None
    assert form_of(route.calls.last.request)["identifier"] == [f"{local}|{person.value}"]


@pytest.mark.parametrize(
    ("birth", "expected_separator"),
    [
        ("19850317", "-"),
        ("19270101", "-"),  # 99 this year
        ("19261224", "+"),  # turns 100 later this year: the register already writes "+"
        ("19250601", "+"),
        ("20260101", "-"),  # born this year
    ],
)
async def test_ten_digit_format_with_minus_or_plus(
    router: respx.Router, mock_client: httpx.AsyncClient, birth: str, expected_separator: str
) -> None:
    person = make_person(birth, "482")
    short = f"{person.value[2:8]}{expected_separator}{person.value[8:]}"
    stored = resource("Patient", "p1", identifier=[{"system": PERSONNUMMER_SYSTEM, "value": short}])
    route = router.post(SEARCH).mock(return_value=fhir_response(searchset(stored)))
    found = await adapter(mock_client, identifier_format="yymmdd-nnnn").find_patient(person)
    assert found is not None
    assert form_of(route.calls.last.request)["identifier"] == [f"{PERSONNUMMER_SYSTEM}|{short}"]


def test_format_identifier_canonical_is_the_twelve_digits() -> None:
    assert format_identifier(TOLVAN, "canonical", TODAY) == "191212121212"
    assert format_identifier(TOLVAN, "yymmdd-nnnn", TODAY) == "121212+1212"
    assert format_identifier(TOLVAN, "yymmdd-nnnn", date(2011, 1, 1)) == "121212-1212"


@st.composite
def people_and_days(draw: st.DrawFn) -> tuple[PersonIdentifier, date]:
    birth = draw(st.dates(min_value=date(1880, 1, 1), max_value=date(2030, 12, 31)))
    today = birth + timedelta(days=draw(st.integers(min_value=0, max_value=365 * 150)))
    serial = f"{draw(st.integers(min_value=0, max_value=999)):03d}"
    day = birth.day + (60 if draw(st.booleans()) else 0)
    nine = f"{birth:%y%m}{day:02d}{serial}"
    value = f"{birth:%Y%m}{day:02d}{serial}{luhn_check_digit(nine)}"
    return PersonIdentifier(value), today


@given(people_and_days())
def test_ten_digit_form_reads_back_as_the_same_person(case: tuple[PersonIdentifier, date]) -> None:
    person, today = case
    short = format_identifier(person, "yymmdd-nnnn", today)
    assert len(short) == 11
    assert short[6] in "-+"
    assert parse_person_identifier(short, today=today) == person

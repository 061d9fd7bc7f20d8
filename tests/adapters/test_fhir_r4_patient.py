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

from adapters.config import SourceConfigError
from adapters.errors import SourceProtocolError
from adapters.fhir_r4 import FhirR4Adapter, format_identifier
from fhir_profiles.identifiers import (
    PERSONNUMMER_OID,
    PERSONNUMMER_SYSTEM,
    SAMORDNINGSNUMMER_OID,
    SAMORDNINGSNUMMER_SYSTEM,
    IdentifierForm,
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


def or_terms(person: PersonIdentifier, *systems: str) -> list[str]:
    """The OR-search value for ``person`` under ``systems``, every form in the searched order."""
    values = person.written_forms(today=TODAY)
    return [",".join(f"{system}|{value}" for system in systems for value in values)]


async def test_post_search_keeps_the_personnummer_out_of_every_url(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    route = router.post(SEARCH).mock(return_value=fhir_response(searchset(patient("p1", TOLVAN))))
    found = await adapter(mock_client).find_patient(TOLVAN)
    assert found is not None
    assert found["id"] == "p1"
    request = route.calls.last.request
    assert form_of(request)["_count"] == ["2"]
    assert "191212121212" in form_of(request)["identifier"][0]
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.headers["Accept"] == "application/fhir+json"
    for url in sent_urls(router):
        assert "121212" not in url
        assert "?" not in url


async def test_default_or_search_names_both_national_systems_in_every_form(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    person = make_person("19850317", "482")
    route = router.post(SEARCH).mock(return_value=fhir_response(searchset(patient("p1", person))))
    assert await adapter(mock_client).find_patient(person) is not None
    assert len(router.calls) == 1
    twelve, short = person.value, person.value[2:]
    values = [twelve, f"{twelve[:8]}-{twelve[8:]}", f"{short[:6]}-{short[6:]}", short]
    expected = [f"{system}|{value}" for system in (PERSONNUMMER_SYSTEM, PERSONNUMMER_OID)
                for value in values]  # fmt: skip
    assert form_of(route.calls.last.request)["identifier"] == [",".join(expected)]
    assert or_terms(person, PERSONNUMMER_SYSTEM, PERSONNUMMER_OID) == [",".join(expected)]


async def test_a_centenarian_is_searched_with_plus_and_never_without_separator(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    route = router.post(SEARCH).mock(return_value=fhir_response(searchset(total=0)))
    assert await adapter(mock_client).find_patient(TOLVAN) is None  # 114 years old in 2026
    terms = form_of(route.calls.last.request)["identifier"][0].split(",")
    values = {term.split("|")[1] for term in terms}
    assert values == {"191212121212", "19121212-1212", "121212+1212"}
    assert {term.split("|")[0] for term in terms} == {PERSONNUMMER_SYSTEM, PERSONNUMMER_OID}


@pytest.mark.parametrize(
    ("system", "form"),
    [
        (PERSONNUMMER_OID, "yymmdd-nnnn"),
        (PERSONNUMMER_SYSTEM, "yyyymmdd-nnnn"),
        (PERSONNUMMER_OID, "canonical"),
        (PERSONNUMMER_SYSTEM, "yymmddnnnn"),
    ],
)
async def test_a_patient_filed_under_any_system_and_form_is_found(
    router: respx.Router, mock_client: httpx.AsyncClient, system: str, form: IdentifierForm
) -> None:
    person = make_person("19850317", "482")
    value = person.format(form, today=TODAY)
    stored = resource("Patient", "p1", identifier=[{"system": system, "value": value}])
    route = router.post(SEARCH).mock(return_value=fhir_response(searchset(stored)))
    found = await adapter(mock_client).find_patient(person)
    assert found is not None
    assert found["id"] == "p1"
    assert f"{system}|{value}" in form_of(route.calls.last.request)["identifier"][0].split(",")


def rejecting_or_search(holder: dict[str, Any] | None) -> Any:
    """A source that refuses comma OR-searches with 400 and holds ``holder`` (or nobody)."""

    def answer(request: httpx.Request) -> httpx.Response:
        (identifier,) = form_of(request)["identifier"]
        if "," in identifier:
            outcome = resource("OperationOutcome", None, issue=[{"severity": "error"}])
            return fhir_response(outcome, status=400)
        system, _, value = identifier.partition("|")
        for held in (holder or {}).get("identifier", []):
            if held == {"system": system, "value": value}:
                return fhir_response(searchset(holder or {}))
        return fhir_response(searchset(total=0))

    return answer


async def test_a_refused_or_search_falls_back_to_one_identifier_per_post(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    person = make_person("19850317", "482")
    short = person.format("yymmdd-nnnn", today=TODAY)
    stored = resource("Patient", "p1", identifier=[{"system": PERSONNUMMER_OID, "value": short}])
    route = router.post(SEARCH).mock(side_effect=rejecting_or_search(stored))
    source = adapter(mock_client)
    found = await source.find_patient(person)
    assert found is not None
    assert found["id"] == "p1"
    asked = [form_of(call.request)["identifier"][0] for call in route.calls]
    (or_search,) = or_terms(person, PERSONNUMMER_SYSTEM, PERSONNUMMER_OID)
    terms = or_search.split(",")
    # The OR-search, then single identifiers in order up to the one that matches.
    assert asked == [or_search, *terms[: terms.index(f"{PERSONNUMMER_OID}|{short}") + 1]]
    assert all(call.request.method == "POST" for call in route.calls)
    for url in sent_urls(router):
        assert person.value[2:8] not in url
        assert "?" not in url
    # The refusal is remembered: the next person is asked one identifier at a time at once.
    before = len(route.calls)
    assert await source.find_patient(person) is not None
    again = [form_of(call.request)["identifier"][0] for call in list(route.calls)[before:]]
    assert again == asked[1:]


async def test_or_search_can_be_turned_off_for_a_source_that_ignores_it(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    person = make_person("19850317", "482")
    stored = resource(
        "Patient", "p1", identifier=[{"system": PERSONNUMMER_SYSTEM, "value": person.value[2:]}]
    )
    route = router.post(SEARCH).mock(side_effect=rejecting_or_search(stored))
    found = await adapter(mock_client, identifier_or_search=False).find_patient(person)
    assert found is not None
    asked = [form_of(call.request)["identifier"][0] for call in route.calls]
    values = person.written_forms(today=TODAY)
    assert asked == [f"{PERSONNUMMER_SYSTEM}|{value}" for value in values]  # the 4th matches


async def test_no_record_only_after_every_identifier_was_tried(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    person = make_person("19800175", "321")  # samordningsnummer
    route = router.post(SEARCH).mock(side_effect=rejecting_or_search(None))
    assert await adapter(mock_client).find_patient(person) is None
    asked = [form_of(call.request)["identifier"][0] for call in route.calls]
    (or_search,) = or_terms(person, SAMORDNINGSNUMMER_SYSTEM, SAMORDNINGSNUMMER_OID)
    assert asked == [or_search, *or_search.split(",")]
    assert len(asked) == 1 + 8
    for url in sent_urls(router):
        assert person.value[2:8] not in url


async def test_a_400_to_a_single_identifier_is_a_protocol_error(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    router.post(SEARCH).mock(return_value=fhir_response({}, status=400))
    source = adapter(mock_client, identifier_format="canonical", identifier_system="urn:x")
    with pytest.raises(SourceProtocolError, match="HTTP 400") as caught:
        await source.find_patient(TOLVAN)
    assert "121212" not in str(caught.value)
    assert len(router.calls) == 1


async def test_configured_systems_of_the_other_kind_are_not_asked(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    local = "urn:oid:1.2.752.99999.1"
    person = make_person("19850317", "482")
    route = router.post(SEARCH).mock(return_value=fhir_response(searchset(total=0)))
    source = adapter(
        mock_client,
        identifier_systems=[SAMORDNINGSNUMMER_OID, PERSONNUMMER_OID, local],
        identifier_formats=["canonical"],
    )
    assert await source.find_patient(person) is None
    assert form_of(route.calls.last.request)["identifier"] == [
        f"{PERSONNUMMER_OID}|{person.value},{local}|{person.value}"
    ]


def test_a_setting_and_its_one_entry_shorthand_are_not_both_accepted() -> None:
    with pytest.raises(SourceConfigError, match="identifier_systems or identifier_system"):
        FhirR4Adapter.check_config(
            make_config(identifier_system="urn:x", identifier_systems=["urn:y"])
        )
    with pytest.raises(SourceConfigError, match="identifier_formats or identifier_format"):
        FhirR4Adapter.check_config(
            make_config(identifier_format="canonical", identifier_formats=["canonical"])
        )


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
    assert form_of(route.calls.last.request)["identifier"] == or_terms(
        person, SAMORDNINGSNUMMER_SYSTEM, SAMORDNINGSNUMMER_OID
    )


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
    assert form_of(route.calls.last.request)["identifier"] == or_terms(person, local)


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
    assert form_of(route.calls.last.request)["identifier"] == [
        f"{PERSONNUMMER_SYSTEM}|{short},{PERSONNUMMER_OID}|{short}"
    ]


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

"""Person identifiers: every textual form, check digits, samordningsnummer, systems."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.fhir_r4 import format_identifier
from fhir_profiles.identifiers import (
    KNOWN_PERSON_SYSTEMS,
    PERSONNUMMER_OID,
    PERSONNUMMER_SYSTEM,
    SAMORDNINGSNUMMER_OID,
    SAMORDNINGSNUMMER_SYSTEM,
    InvalidCheckDigit,
    InvalidPersonIdentifier,
    PersonIdentifier,
    SystemKind,
    WrongIdentifierKind,
    canonical_identifier,
    luhn_check_digit,
    parse_person_identifier,
    person_identifier_of,
)

VAST_SYSTEM = "http://regionvast.example.se/identifier/personnummer"
TODAY = date(2026, 11, 1)


@st.composite
def people(draw: st.DrawFn, today: date = TODAY) -> PersonIdentifier:
    """A valid canonical number born at most 199 calendar years before ``today``."""
    born = draw(st.dates(min_value=date(today.year - 199, 1, 1), max_value=today))
    coordination = draw(st.booleans())
    serial = draw(st.integers(min_value=0, max_value=999))
    day = born.day + 60 if coordination else born.day
    nine = f"{born.year % 100:02d}{born.month:02d}{day:02d}{serial:03d}"
    value = f"{born.year // 100:02d}{nine}{luhn_check_digit(nine)}"
    return PersonIdentifier(value)


@given(people())
def test_every_textual_form_round_trips(person: PersonIdentifier) -> None:
    forms = [
        person.value,
        person.format("yyyymmdd-nnnn"),
        person.format("yymmdd-nnnn", today=TODAY),
        format_identifier(person, "yymmdd-nnnn", TODAY),
        f"  {person.value}\n",
    ]
    if TODAY.year - person.birth_date.year < 100:
        forms.append(person.format("yymmddnnnn", today=TODAY))
    for text in forms:
        assert parse_person_identifier(text, today=TODAY) == person


@given(people())
def test_written_forms_are_every_form_that_reads_back(person: PersonIdentifier) -> None:
    written = person.written_forms(today=TODAY)
    centenarian = TODAY.year - person.birth_date.year >= 100
    assert len(written) == (3 if centenarian else 4)
    assert written[0] == person.value
    assert len(set(written)) == len(written)
    for text in written:
        assert parse_person_identifier(text, today=TODAY) == person
    assert person.written_forms(("yymmdd-nnnn",), today=TODAY) == (
        person.format("yymmdd-nnnn", today=TODAY),
    )


def test_national_systems_follow_the_kind_of_number() -> None:
    tolvan = PersonIdentifier("191212121212")
    assert tolvan.national_systems == (PERSONNUMMER_SYSTEM, PERSONNUMMER_OID)
    samordning = PersonIdentifier(f"19800175000{luhn_check_digit('800175000')}")
    assert samordning.is_samordningsnummer
    assert samordning.national_systems == (SAMORDNINGSNUMMER_SYSTEM, SAMORDNINGSNUMMER_OID)


@given(people())
def test_plus_form_matches_the_adapter_rule(person: PersonIdentifier) -> None:
    ours = person.format("yymmdd-nnnn", today=TODAY)
    assert ours == format_identifier(person, "yymmdd-nnnn", TODAY)
    assert ("+" in ours) == (TODAY.year - person.birth_date.year >= 100)


@given(people(), st.integers(min_value=2, max_value=11), st.integers(min_value=1, max_value=9))
def test_any_single_digit_change_is_rejected(
    person: PersonIdentifier, index: int, delta: int
) -> None:
    digits = list(person.value)
    digits[index] = str((int(digits[index]) + delta) % 10)
    with pytest.raises(InvalidPersonIdentifier):
        parse_person_identifier("".join(digits), today=TODAY)


@given(people())
def test_a_wrong_check_digit_says_so(person: PersonIdentifier) -> None:
    wrong = person.value[:11] + str((int(person.value[11]) + 1) % 10)
    with pytest.raises(InvalidCheckDigit):
        parse_person_identifier(wrong, today=TODAY)


def test_the_century_digits_are_not_covered_by_the_check() -> None:
    # Documented limit of the Luhn check: it covers YYMMDDNNNC only.
    assert parse_person_identifier("18121212-1212").value == "181212121212"


@given(people())
def test_samordningsnummer_is_detected(person: PersonIdentifier) -> None:
    coordination = int(person.value[6:8]) > 60
    assert person.is_samordningsnummer is coordination
    assert person.kind == ("samordningsnummer" if coordination else "personnummer")
    assert person.system == (SAMORDNINGSNUMMER_SYSTEM if coordination else PERSONNUMMER_SYSTEM)
    assert person.oid_system == (SAMORDNINGSNUMMER_OID if coordination else PERSONNUMMER_OID)
    assert person.birth_date.day == int(person.value[6:8]) - (60 if coordination else 0)


def test_tolvan_in_every_form() -> None:
    tolvan = PersonIdentifier("191212121212")
    for text in ("191212121212", "19121212-1212", "121212+1212"):
        assert parse_person_identifier(text, today=TODAY) == tolvan
    assert parse_person_identifier("121212-1212", today=TODAY).value == "201212121212"
    assert tolvan.format("yymmdd-nnnn", today=TODAY) == "121212+1212"
    with pytest.raises(ValueError, match="100"):
        tolvan.format("yymmddnnnn", today=TODAY)


@given(people())
def test_canonical_identifier_over_known_systems(person: PersonIdentifier) -> None:
    national = canonical_identifier(person.system, person.value, today=TODAY)
    oid = canonical_identifier(person.oid_system, person.format("yyyymmdd-nnnn"), today=TODAY)
    local = canonical_identifier(
        VAST_SYSTEM, person.format("yymmdd-nnnn", today=TODAY), today=TODAY
    )
    assert national == oid == local == person
    other = (
        SAMORDNINGSNUMMER_SYSTEM if person.system == PERSONNUMMER_SYSTEM else PERSONNUMMER_SYSTEM
    )
    with pytest.raises(WrongIdentifierKind):
        canonical_identifier(other, person.value, today=TODAY)


@pytest.mark.parametrize(
    "system",
    ["urn:oid:1.2.752.129.2.1.4.1", "http://example.org/mrn", "", "urn:oid:1.2.752.129.2.1.3"],
)
def test_unknown_systems_are_never_guessed(system: str) -> None:
    assert canonical_identifier(system, "191212121212") is None


def test_extra_systems_from_configuration() -> None:
    extra: dict[str, SystemKind] = {"http://region.example/pnr": "personnummer"}
    person = canonical_identifier(
        "http://region.example/pnr", "121212+1212", today=TODAY, extra_systems=extra
    )
    assert person == PersonIdentifier("191212121212")
    assert canonical_identifier("http://region.example/pnr", "191212121212") is None


def test_registry_holds_the_vast_system() -> None:
    assert KNOWN_PERSON_SYSTEMS[VAST_SYSTEM] == "any"
    assert KNOWN_PERSON_SYSTEMS[PERSONNUMMER_OID] == "personnummer"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1912121212121212",
        "19121212-121",
        "19121312-1212",
        "121212*1212",
        "١٩١٢١٢١٢١٢١٢",  # Arabic-Indic digits are digits to Python, not to us
        "19121212-1212" + " " * 10_000 + "x",
        "9" * 1_000_000,
        "00000000-0000",
    ],
)
def test_malformed_text_is_rejected(text: str) -> None:
    with pytest.raises(InvalidPersonIdentifier):
        parse_person_identifier(text, today=TODAY)


@pytest.mark.parametrize("value", [None, 191212121212, ["191212121212"], {"v": 1}, b"191212121212"])
def test_wrong_types_are_rejected_not_crashed_on(value: object) -> None:
    with pytest.raises(InvalidPersonIdentifier):
        parse_person_identifier(value, today=TODAY)  # type: ignore[arg-type]
    with pytest.raises(InvalidPersonIdentifier):
        canonical_identifier(PERSONNUMMER_SYSTEM, value, today=TODAY)  # type: ignore[arg-type]
    assert canonical_identifier(value, "191212121212") is None  # type: ignore[arg-type]


def test_person_identifier_of_skips_what_it_cannot_use() -> None:
    identifiers = [
        "not an object",
        {"system": "http://example.org/mrn", "value": "191212121212"},
        {"system": PERSONNUMMER_SYSTEM, "value": "191212121213"},
        {"system": PERSONNUMMER_SYSTEM, "value": 191212121212},
        {"system": VAST_SYSTEM, "value": "121212+1212"},
    ]
    assert person_identifier_of(identifiers, today=TODAY) == PersonIdentifier("191212121212")
    assert person_identifier_of("nope") is None
    assert person_identifier_of([{"system": "x", "value": "191212121212"}]) is None


def test_the_number_is_never_printed() -> None:
    person = parse_person_identifier("191212121212")
    assert "1212" not in repr(person)
    assert "1212" not in str(person)
    assert person.fhir_identifier() == {"system": PERSONNUMMER_SYSTEM, "value": "191212121212"}


def test_default_today_is_the_real_date() -> None:
    born_last_year = date.today() - timedelta(days=400)
    nine = f"{born_last_year:%y%m%d}123"
    person = parse_person_identifier(f"{nine[:6]}-{nine[6:]}{luhn_check_digit(nine)}")
    assert person.birth_date == born_last_year

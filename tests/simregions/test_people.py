"""The synthetic population: valid numbers, who lives where, families, determinism."""

from __future__ import annotations

from collections import Counter

from fhir_profiles.identifiers import luhn_check_digit, parse_person_identifier
from simregions import people
from simregions.clock import REFERENCE_DATE
from simregions.people import (
    TEST_PERSON_PNR,
    all_people,
    get_person,
    make_pnr,
    people_in_region,
    relations,
)
from simregions.regions import DEFAULT_REGIONS


def test_every_number_is_valid_unique_and_matches_birth_date_and_sex() -> None:
    everyone = all_people()
    assert len({person.pnr for person in everyone}) == len(everyone)
    for person in everyone:
        parsed = parse_person_identifier(person.pnr, today=REFERENCE_DATE)
        assert parsed.value == person.pnr
        assert luhn_check_digit(person.pnr[2:11]) == int(person.pnr[11])
        assert parsed.birth_date == person.birth_date
        # The ninth digit is odd for men and even for women.
        assert int(person.pnr[10]) % 2 == (1 if person.sex == "male" else 0)


def test_make_pnr_reproduces_the_test_person() -> None:
    assert make_pnr(get_person(TEST_PERSON_PNR).birth_date, 121) == TEST_PERSON_PNR


def test_the_test_person_is_tolvan_in_all_three_regions() -> None:
    tolvan = all_people()[0]
    assert tolvan.pnr == TEST_PERSON_PNR
    assert (tolvan.given, tolvan.family) == ("Tolvan", "Tolvansson")
    assert set(tolvan.regions) == {region.id for region in DEFAULT_REGIONS}


def test_each_region_has_at_least_fifty_people_and_others_live_in_one_or_two() -> None:
    for region in DEFAULT_REGIONS:
        assert len(people_in_region(region.id)) >= 50
    for person in all_people()[1:]:
        assert 1 <= len(person.regions) <= 2
        assert len(set(person.regions)) == len(person.regions)


def test_special_people_are_present() -> None:
    everyone = all_people()
    coordination = [p for p in everyone if p.is_samordningsnummer]
    assert len(coordination) >= 3
    centenarians = [p for p in everyone[1:] if p.age >= 100]
    assert len(centenarians) >= 2
    assert any("vast" in p.regions for p in centenarians)
    protected = [p for p in everyone if p.protected_identity]
    assert 1 <= len(protected) <= 2


def test_children_under_thirteen_have_guardians_in_their_region() -> None:
    pairs = relations()
    assert pairs
    by_child = Counter(child for _, child in pairs)
    assert len(by_child) >= 2
    for guardian_pnr, child_pnr in pairs:
        guardian, child = get_person(guardian_pnr), get_person(child_pnr)
        assert child.age < 13
        assert guardian.age >= 18
        assert set(guardian.regions) & set(child.regions)


def test_the_population_is_deterministic() -> None:
    assert people._build() == people._build()
    assert people._build() == people.population()


def test_repr_never_shows_the_number() -> None:
    assert TEST_PERSON_PNR not in repr(get_person(TEST_PERSON_PNR))
    assert "121212" not in repr(all_people())


def test_phone_numbers_come_from_the_range_reserved_for_fiction() -> None:
    for person in all_people():
        prefix, suffix = person.phone[:-2], int(person.phone[-2:])
        assert prefix == "070-17406"
        assert 5 <= suffix <= 99

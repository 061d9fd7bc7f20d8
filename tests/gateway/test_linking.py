"""Patient linking: a source Patient is the person in whatever system and form it files them."""

from __future__ import annotations

from datetime import date

import pytest

from fhir_profiles.identifiers import (
    IDENTIFIER_FORMS,
    PERSONNUMMER_OID,
    PERSONNUMMER_SYSTEM,
    SAMORDNINGSNUMMER_OID,
    SAMORDNINGSNUMMER_SYSTEM,
    IdentifierForm,
    PersonIdentifier,
    luhn_check_digit,
)
from gateway.merge.linking import LinkError, check_link

# A date well inside the lifetimes below: the 10-digit forms read the same on any day
# before these people turn 100.
DAY = date(2026, 11, 22)


def person(birth: str, serial: str) -> PersonIdentifier:
    return PersonIdentifier(birth + serial + str(luhn_check_digit(birth[2:] + serial)))


ANNA = person("19850317", "482")
SAMO = person("19800175", "321")  # samordningsnummer
OTHER = person("19850317", "490")  # same birth date, another serial


def source_patient(*identifiers: tuple[str, str]) -> dict[str, object]:
    return {
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [{"system": system, "value": value} for system, value in identifiers],
    }


@pytest.mark.parametrize("form", IDENTIFIER_FORMS)
@pytest.mark.parametrize(
    ("who", "system"),
    [
        (ANNA, PERSONNUMMER_SYSTEM),
        (ANNA, PERSONNUMMER_OID),
        (SAMO, SAMORDNINGSNUMMER_SYSTEM),
        (SAMO, SAMORDNINGSNUMMER_OID),
    ],
)
def test_the_person_is_recognised_in_every_system_and_form(
    who: PersonIdentifier, system: str, form: IdentifierForm
) -> None:
    check_link(source_patient((system, who.format(form, today=DAY))), who)


@pytest.mark.parametrize("form", IDENTIFIER_FORMS)
@pytest.mark.parametrize("system", [PERSONNUMMER_SYSTEM, PERSONNUMMER_OID])
def test_another_person_in_any_form_is_not_linked(system: str, form: IdentifierForm) -> None:
    with pytest.raises(LinkError, match="another identity number"):
        check_link(source_patient((system, OTHER.format(form, today=DAY))), ANNA)


def test_the_person_in_several_forms_at_once_is_one_person() -> None:
    check_link(
        source_patient(
            (PERSONNUMMER_SYSTEM, ANNA.value),
            (PERSONNUMMER_OID, ANNA.format("yymmdd-nnnn", today=DAY)),
            (PERSONNUMMER_OID, ANNA.format("yyyymmdd-nnnn", today=DAY)),
        ),
        ANNA,
    )


def test_the_person_beside_another_number_is_not_linked() -> None:
    with pytest.raises(LinkError, match="another identity number"):
        check_link(
            source_patient(
                (PERSONNUMMER_OID, ANNA.format("yymmdd-nnnn", today=DAY)),
                (PERSONNUMMER_SYSTEM, OTHER.value),
            ),
            ANNA,
        )


def test_a_samordningsnummer_under_the_personnummer_system_is_not_the_person() -> None:
    with pytest.raises(LinkError, match="invalid"):
        check_link(source_patient((PERSONNUMMER_OID, SAMO.value)), SAMO)

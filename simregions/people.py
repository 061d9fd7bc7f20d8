"""Deterministic synthetic Swedish people who live in the simulated regions.

Every person is made up: names are common Swedish names combined at random, personnummer are
built from random birth dates and serial numbers with a correct check digit, and telephone
numbers come from the range 070-1740605..070-1740699 that Swedish regulators reserve for
fiction. The population is the same on every start (fixed seed, fixed reference date).

Who is in it:

* the classic test person 19121212-1212 "Tolvan Tolvansson" (born 1912, so aged 100+), in all
  three regions;
* about 150 other people, each in one or two regions, so that every region has well over 50;
* a few people with a samordningsnummer (day of birth + 60);
* two more people aged 100 or more (so Region Väst writes their number with ``+``);
* a few children under 13, each with one or two guardians among the people
  (see :func:`relations`);
* two people with protected identity (skyddad identitet).
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from datetime import date
from typing import Literal

from fhir_profiles.identifiers import luhn_check_digit
from simregions.clock import REFERENCE_DATE
from simregions.regions import DEFAULT_REGIONS

TEST_PERSON_PNR = "191212121212"
#: An adult of the simulated population, the demo's example of a proxy (ombud) for Tolvan.
DEMO_PROXY_PNR = "197904105082"

Sex = Literal["male", "female"]

_SEED = 20261101
_OTHER_PEOPLE = 150

_MALE_NAMES = (
    "Erik", "Lars", "Karl", "Anders", "Johan", "Per", "Nils", "Mikael", "Jan", "Hans",
    "Lennart", "Olof", "Peter", "Gunnar", "Sven", "Fredrik", "Bengt", "Bo", "Daniel", "Alexander",
    "Gustav", "Magnus", "Göran", "Stefan", "Oskar", "Axel", "Elias", "Hugo", "Liam", "William",
    "Lucas", "Adam", "Viktor", "Emil", "Isak", "Åke", "Björn", "Ulf", "Torbjörn", "Rolf",
)  # fmt: skip
_FEMALE_NAMES = (
    "Maria", "Anna", "Margareta", "Elisabeth", "Eva", "Kristina", "Birgitta", "Karin", "Marie",
    "Ingrid", "Christina", "Linnéa", "Sofia", "Kerstin", "Lena", "Helena", "Emma", "Johanna",
    "Inger", "Sara", "Cecilia", "Elin", "Anneli", "Malin", "Ida", "Hanna", "Alice", "Maja",
    "Elsa", "Astrid", "Wilma", "Ebba", "Agnes", "Saga", "Frida", "Märta", "Gunilla", "Ulla",
    "Åsa", "Siv",
)  # fmt: skip
_FAMILY_NAMES = (
    "Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsson", "Olsson",
    "Persson", "Svensson", "Gustafsson", "Pettersson", "Jonsson", "Jansson", "Hansson",
    "Bengtsson", "Jönsson", "Lindberg", "Jakobsson", "Magnusson", "Olofsson", "Lindström",
    "Lindqvist", "Lindgren", "Axelsson", "Berg", "Bergström", "Lundberg", "Lind", "Lundgren",
    "Lundqvist", "Mattsson", "Berglund", "Fredriksson", "Sandberg", "Henriksson", "Forsberg",
    "Sjöberg", "Wallin", "Engström", "Eklund", "Danielsson", "Lundin", "Håkansson", "Björk",
    "Bergman", "Gunnarsson", "Holm", "Wikström", "Samuelsson", "Isaksson", "Fransson",
    "Bergqvist", "Nyström", "Holmberg", "Arvidsson", "Löfgren", "Söderberg", "Nyberg",
    "Blomqvist", "Claesson",
)  # fmt: skip
_STREETS = (
    "Storgatan", "Kyrkogatan", "Skolgatan", "Järnvägsgatan", "Drottninggatan", "Kungsgatan",
    "Björkvägen", "Ringvägen", "Torggatan", "Parkvägen", "Trädgårdsgatan", "Strandvägen",
    "Ekvägen", "Lärkvägen", "Östra Långgatan", "Västra vägen", "Sjögatan", "Bruksgatan",
)  # fmt: skip

# Postal code prefixes and towns per region; all towns are fictitious.
_REGION_PLACES: dict[str, tuple[str, tuple[str, ...]]] = {
    "nord": ("97", ("Norrhamn", "Fjällbacken", "Älvby")),
    "vast": ("41", ("Älvstaden", "Havsviken", "Skärvik")),
    "syd": ("21", ("Sundsvik", "Söderslätt", "Strandhem")),
}


@dataclass(frozen=True)
class Person:
    """One synthetic person. ``pnr`` is the canonical 12-digit number (never log it)."""

    pnr: str
    given: str
    family: str
    sex: Sex
    birth_date: date
    regions: tuple[str, ...]
    protected_identity: bool
    street: str
    postal_code: str
    city: str
    phone: str

    @property
    def is_samordningsnummer(self) -> bool:
        """Whether the number is a samordningsnummer (day of birth + 60)."""
        return int(self.pnr[6:8]) > 60

    @property
    def age(self) -> int:
        """Age in whole years on :data:`REFERENCE_DATE`."""
        born = self.birth_date
        before_birthday = (REFERENCE_DATE.month, REFERENCE_DATE.day) < (born.month, born.day)
        return REFERENCE_DATE.year - born.year - int(before_birthday)

    def __repr__(self) -> str:  # the number must not leak into logs or test output
        return f"Person(<redacted>, regions={self.regions})"


@dataclass(frozen=True)
class Population:
    """Everyone, plus who is guardian of whom as (guardian pnr, child pnr) pairs."""

    people: tuple[Person, ...]
    relations: tuple[tuple[str, str], ...]


def make_pnr(birth: date, serial: int, *, coordination: bool = False) -> str:
    """Build a canonical 12-digit number with a valid check digit.

    ``serial`` is the three-digit birth number; its last digit is odd for men, even for women.
    """
    day = birth.day + 60 if coordination else birth.day
    nine = f"{birth.year % 100:02d}{birth.month:02d}{day:02d}{serial:03d}"
    return f"{birth.year:04d}{nine[2:]}{luhn_check_digit(nine)}"


class _Builder:
    def __init__(self) -> None:
        self.rng = random.Random(_SEED)
        self.used: set[str] = {TEST_PERSON_PNR}
        self.people: list[Person] = []
        self.phone_suffix = 5

    def phone(self) -> str:
        # 070-1740605 .. 070-1740699 is reserved for fiction; wrap around when used up.
        suffix = self.phone_suffix
        self.phone_suffix = 5 + (self.phone_suffix - 4) % 95
        return f"070-17406{suffix:02d}"

    def add(
        self,
        *,
        birth: date,
        sex: Sex,
        regions: tuple[str, ...],
        coordination: bool = False,
        protected: bool = False,
        family: str | None = None,
    ) -> Person:
        rng = self.rng
        while True:
            serial = rng.randrange(10, 1000)
            if (serial % 10) % 2 != (1 if sex == "male" else 0):
                serial = (serial // 10) * 10 + (serial % 10 + 1) % 10
            pnr = make_pnr(birth, serial, coordination=coordination)
            if pnr not in self.used:
                break
        self.used.add(pnr)
        prefix, towns = _REGION_PLACES[regions[0]]
        person = Person(
            pnr=pnr,
            given=rng.choice(_MALE_NAMES if sex == "male" else _FEMALE_NAMES),
            family=family or rng.choice(_FAMILY_NAMES),
            sex=sex,
            birth_date=birth,
            regions=regions,
            protected_identity=protected,
            street=f"{rng.choice(_STREETS)} {rng.randrange(1, 80)}",
            postal_code=f"{prefix}{rng.randrange(1, 10)} {rng.randrange(10, 99)}",
            city=rng.choice(towns),
            phone=self.phone(),
        )
        self.people.append(person)
        return person

    def birth(self, first_year: int, last_year: int) -> date:
        # Day 1..28 keeps every date valid and every samordningsnummer day below 89.
        rng = self.rng
        year = rng.randrange(first_year, last_year + 1)
        return date(year, rng.randrange(1, 13), rng.randrange(1, 29))

    def regions_for(self, index: int) -> tuple[str, ...]:
        ids = [region.id for region in DEFAULT_REGIONS]
        home = ids[index % len(ids)]
        if self.rng.random() < 0.35:
            other = self.rng.choice([rid for rid in ids if rid != home])
            return (home, other)
        return (home,)


def _build() -> Population:
    builder = _Builder()
    rng = builder.rng
    all_ids = tuple(region.id for region in DEFAULT_REGIONS)
    builder.people.append(
        Person(
            pnr=TEST_PERSON_PNR,
            given="Tolvan",
            family="Tolvansson",
            sex="male",
            birth_date=date(1912, 12, 12),
            regions=all_ids,
            protected_identity=False,
            street="Tolvgränd 12",
            postal_code="121 21",
            city="Norrhamn",
            phone=builder.phone(),
        )
    )
    # Two more centenarians; one lives in vast so its "+" form appears beside Tolvan's.
    builder.add(birth=date(1921, 4, 17), sex="female", regions=("vast", "nord"))
    builder.add(birth=date(1924, 8, 3), sex="male", regions=("syd",))
    # Samordningsnummer holders (e.g. people working in Sweden without being registered).
    builder.add(birth=date(1988, 3, 14), sex="male", regions=("nord",), coordination=True)
    builder.add(birth=date(1995, 9, 22), sex="female", regions=("vast",), coordination=True)
    builder.add(birth=date(1979, 1, 5), sex="male", regions=("syd", "vast"), coordination=True)
    # Protected identity: their address and telephone are never served.
    builder.add(birth=date(1983, 6, 9), sex="female", regions=("nord",), protected=True)
    builder.add(birth=date(1969, 11, 27), sex="male", regions=("syd",), protected=True)

    relations: list[tuple[str, str]] = []
    # Families: children under 13 and their guardians, living in the same region(s).
    families: tuple[tuple[tuple[str, ...], int, tuple[date, ...]], ...] = (
        (("nord",), 2, (date(2016, 5, 12), date(2020, 2, 3))),
        (("vast", "syd"), 1, (date(2018, 10, 21),)),
        (("syd",), 2, (date(2022, 7, 8),)),
    )
    for regions, guardian_count, child_births in families:
        family = rng.choice(_FAMILY_NAMES)
        sexes: tuple[Sex, ...] = ("female", "male")
        guardians = [
            builder.add(
                birth=builder.birth(1980, 1992), sex=sexes[i], regions=regions, family=family
            )
            for i in range(guardian_count)
        ]
        for child_birth in child_births:
            child_sex: Sex = rng.choice(("female", "male"))
            child = builder.add(birth=child_birth, sex=child_sex, regions=regions, family=family)
            relations.extend((guardian.pnr, child.pnr) for guardian in guardians)

    for index in range(_OTHER_PEOPLE):
        # Mostly adults; a tail of older people, as in any care population.
        first, last = rng.choice(((1930, 1950), (1945, 1975), (1960, 2000), (1975, 2008)))
        sex: Sex = rng.choice(("female", "male"))
        builder.add(birth=builder.birth(first, last), sex=sex, regions=builder.regions_for(index))
    return Population(people=tuple(builder.people), relations=tuple(relations))


@functools.cache
def population() -> Population:
    """The whole synthetic population (built once, then cached)."""
    return _build()


def all_people() -> tuple[Person, ...]:
    """Every synthetic person, the test person first."""
    return population().people


def people_in_region(region_id: str) -> tuple[Person, ...]:
    """The people who have records in region ``region_id``."""
    return tuple(person for person in population().people if region_id in person.regions)


def relations() -> tuple[tuple[str, str], ...]:
    """Guardian relations as (guardian pnr, child pnr); every child is under 13."""
    return population().relations


#: Legal representatives (god man, förvaltare) as (representative pnr, represented pnr):
#: a man of 59 for a woman of 86, both in Region Nord. Chosen among people the population
#: already has (adding people would change everyone's data).
_REPRESENTATIVES = (("196707195290", "194003029818"),)


def representatives() -> tuple[tuple[str, str], ...]:
    """Legal representative relations as (representative pnr, represented pnr)."""
    return _REPRESENTATIVES


def get_person(pnr: str) -> Person:
    """Return the person with canonical number ``pnr`` (KeyError, without the number, if none)."""
    for person in population().people:
        if person.pnr == pnr:
            return person
    raise KeyError("no such synthetic person")

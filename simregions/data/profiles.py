"""A person's clinical profile: which chronic and acute diagnoses they have and their
usual lab levels. It is the same in every region the person lives in; what each region
recorded of it differs.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping
from dataclasses import dataclass

from simregions.catalog import DIAGNOSES, Diagnosis
from simregions.labs import LAB_ANALYSES
from simregions.people import TEST_PERSON_PNR, Person, all_people

_TEST_PERSON_CHRONIC = (
    "hypertoni", "forstadsflimmer", "hjartsvikt", "diabetes2", "njursvikt", "hypotyreos",
    "reflux", "gonartros", "b12brist", "prostata",
)  # fmt: skip
_TEST_PERSON_ACUTE = ("uvi", "brostsmarta", "ovre_luftvag", "radiusfraktur")

# Minimum age for diagnoses that would look odd in young people.
_MIN_AGE = {
    "prostata": 50, "osteoporos": 55, "hjartsvikt": 55, "forstadsflimmer": 50,
    "njursvikt": 50, "kol": 45, "gonartros": 45, "brostsmarta": 30,
}  # fmt: skip
_MALE_ONLY = {"prostata"}
_CHILD_ONLY = {"otit"}

# How a chronic diagnosis moves a person's usual lab levels.
_CHRONIC_SHIFTS: dict[str, dict[str, float]] = {
    "diabetes2": {"glukos": 2.5, "hba1c": 16},
    "diabetes1": {"glukos": 3.5, "hba1c": 22},
    "njursvikt": {"kreatinin": 55, "egfr": -35, "cystatin": 0.7, "urea": 3, "hb": -8},
    "hyperkolesterolemi": {"kolesterol": 1.6, "ldl": 1.4},
    "hypotyreos": {"tsh": 2.8, "ft4": -2},
    "b12brist": {"b12": -190, "hb": -14, "mcv": 9},
    "jarnbrist": {"ferritin": -95, "hb": -22, "mcv": -11, "jarn": -9},
    "hjartsvikt": {"ntprobnp": 1400, "kreatinin": 15},
    "forstadsflimmer": {"ntprobnp": 450},
    "prostata": {"psa": 1.0},
}
#: How an acute illness moves the results taken during it.
ACUTE_SHIFTS: dict[str, dict[str, float]] = {
    "uvi": {"crp": 35, "lpk": 3.5},
    "tonsillit": {"crp": 60, "lpk": 6, "neut": 5},
    "ovre_luftvag": {"crp": 12, "lpk": 1.5},
    "otit": {"crp": 30, "lpk": 4},
    "brostsmarta": {"troponin": 3},
}


@dataclass(frozen=True)
class Profile:
    """A person's chronic and acute diagnoses (catalogue keys) and usual lab levels."""

    chronic: tuple[str, ...]
    acute: tuple[str, ...]
    baseline: Mapping[str, float]


def _eligible(diagnosis: Diagnosis, person: Person) -> bool:
    if person.age < 13:
        return diagnosis.children
    if diagnosis.key in _CHILD_ONLY:
        return False
    if diagnosis.key in _MALE_ONLY and person.sex != "male":
        return False
    return person.age >= _MIN_AGE.get(diagnosis.key, 0)


@functools.cache
def clinical_profile(index: int) -> Profile:
    """A person's clinical profile, shared by every region the person lives in."""
    person = all_people()[index]
    rng = random.Random(f"profile:{index}")
    chronic: tuple[str, ...]
    acute: tuple[str, ...]
    if person.pnr == TEST_PERSON_PNR:
        chronic, acute = _TEST_PERSON_CHRONIC, _TEST_PERSON_ACUTE
    else:
        chronic_pool = [d.key for d in DIAGNOSES.values() if d.chronic and _eligible(d, person)]
        acute_pool = [d.key for d in DIAGNOSES.values() if not d.chronic and _eligible(d, person)]
        if person.age < 40:
            chronic_count = rng.randrange(0, 2)
        elif person.age < 65:
            chronic_count = rng.randrange(1, 3)
        else:
            chronic_count = rng.randrange(2, 4)
        chronic = tuple(rng.sample(chronic_pool, min(chronic_count, len(chronic_pool))))
        acute = tuple(rng.sample(acute_pool, min(2, len(acute_pool))))
    baseline: dict[str, float] = {}
    for analysis in LAB_ANALYSES:
        baseline[analysis.key] = analysis.typical + rng.gauss(0, analysis.spread * 0.5)
    for key in chronic:
        for analysis_key, shift in _CHRONIC_SHIFTS.get(key, {}).items():
            baseline[analysis_key] += shift
    return Profile(chronic=chronic, acute=acute, baseline=baseline)

"""Who acts for another adult: a proxy by the person's grant, or a legal representative
from the relations register; both are adults themselves."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from consent.policy import AccessFacts, decide
from consent.principals import Citizen
from fhir_profiles.identifiers import parse_person_identifier
from store.tables import ConsentRecord

PERSON = parse_person_identifier("191212121212")
READ = frozenset({"patient/*.rs"})
NOW = datetime(2026, 12, 6, tzinfo=UTC)
#: 18 on NOW, and 17 the day before their birthday.
ADULT = parse_person_identifier("200812062388")
MINOR = parse_person_identifier("200812072395")

GRANT = ConsentRecord(
    id="consent-proxy",
    patient_id="p",
    grantee_type="proxy",
    grantee_hsa_id="proxy-id",
    period_start=NOW - timedelta(days=1),
    recorded_at=NOW - timedelta(days=1),
)
FACTS = AccessFacts(person=PERSON, patient_id="p", now=NOW, served_types=frozenset({"Observation"}))


@pytest.mark.parametrize(
    ("facts", "kind"),
    [
        (replace(FACTS, proxy_grants=(GRANT,)), "proxy"),
        (replace(FACTS, representative=True), "representative"),
    ],
)
def test_an_adult_acts_for_the_person_and_a_minor_never(facts: AccessFacts, kind: str) -> None:
    assert ADULT.age_on(NOW.date()) == 18
    assert MINOR.age_on(NOW.date()) == 17
    allowed = decide(Citizen(ADULT, READ), facts)
    assert allowed.allowed
    assert allowed.actor_kind == kind
    refused = decide(Citizen(MINOR, READ), facts)
    assert not refused.allowed
    assert refused.reason == "not-own-record"

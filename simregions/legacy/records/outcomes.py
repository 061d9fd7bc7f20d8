"""The test person's referrals and imaging: a long-term ECG asked of the medical clinic
and answered; a referral to the eye clinic still waiting for an answer; a skin biopsy
answered by the pathology lab, not yet approved for the patient; a chest X-ray and a
kidney ultrasound with a preliminary report, not yet approved for the patient either.
Ids come from names.

The referral contract has no nullification (the national schema leaves it out); the
imaging contract has, and one examination registered on the wrong patient is nullified.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from simregions.legacy.contracts import ICD10SE_OID, IMAGING_EXAMINATION_OID
from simregions.legacy.records.builder import RecordBuilder
from simregions.legacy.records.model import Code, Header, ImagingOutcome, Referral
from simregions.people import Person
from simregions.regions import CareUnit


def _header(
    builder: RecordBuilder,
    person: Person,
    name: str,
    when: datetime,
    unit: CareUnit,
    *,
    approved: bool = True,
    nullified: str | None = None,
) -> Header:
    return builder.named_header(
        person.pnr, name, when, builder.doctors[2], unit, approved=approved, nullified=nullified
    )


def _unit(builder: RecordBuilder, key: str) -> CareUnit:
    return next(unit for unit in builder.region.care_units if unit.key == key)


def referrals(builder: RecordBuilder, person: Person, primary: CareUnit) -> list[Referral]:
    """The test person's referrals, answered or not."""
    gp = builder.doctors[0]
    ecg = datetime(2025, 11, 3, 10, 15)
    eye = datetime(2026, 10, 15, 14, 0)
    skin = datetime(2026, 10, 6, 11, 30)
    return [
        Referral(
            header=_header(
                builder,
                person,
                "referral/ecg",
                ecg + timedelta(days=16),
                builder.unit("hospital-clinic"),
            ),
            referral_id=builder.named_id(person.pnr, "referral-id/ecg"),
            reason="Hjärtklappning trots behandling. Frekvenskontroll? Önskar långtids-EKG.",
            sent=ecg,
            referrer=gp,
            referring_unit=primary,
            title="Kardiologi",
            answer="Långtids-EKG visar förmaksflimmer med medelfrekvens 78/min, inga pauser "
            "över 2,5 sekunder. Fortsatt behandling enligt plan.",
            act="Långtids-EKG, 24 timmar",
            act_time=ecg + timedelta(days=14),
            findings=(Code("I48.9", ICD10SE_OID, "Förmaksflimmer, ospecificerat"),),
        ),
        Referral(
            header=_header(builder, person, "referral/eye", eye, primary),
            referral_id=builder.named_id(person.pnr, "referral-id/eye"),
            reason="Typ 2-diabetes. Ögonbottenundersökning för retinopatiscreening.",
            sent=eye,
            referrer=gp,
            referring_unit=primary,
            title="Ögonsjukvård",
        ),
        Referral(
            header=_header(
                builder,
                person,
                "referral/skin",
                skin + timedelta(days=12),
                _unit(builder, "pato"),
                approved=False,
            ),
            referral_id=builder.named_id(person.pnr, "referral-id/skin"),
            reason="Pärlemorglänsande förändring på näsan sedan ett år. Basaliom?",
            sent=skin,
            referrer=gp,
            referring_unit=primary,
            title="Klinisk patologi",
            answer="Hudbiopsi från näsan: basalcellscancer av nodulär typ, radikalt exstirperad.",
            act="Hudbiopsi, histopatologisk undersökning",
            act_time=skin + timedelta(days=10),
            findings=(Code("C44.3", ICD10SE_OID, "Basalcellscancer i huden på ansiktet"),),
        ),
    ]


def imaging(builder: RecordBuilder, person: Person) -> list[ImagingOutcome]:
    """The test person's imaging examinations and their reports."""
    xray = _unit(builder, "rtgo")
    chest = datetime(2025, 1, 20, 9, 40)
    kidneys = datetime(2026, 9, 28, 13, 20)
    wrong = datetime(2026, 3, 2, 8, 0)
    lungs = Code("RL001", IMAGING_EXAMINATION_OID, "Slätröntgen av lungor")
    return [
        ImagingOutcome(
            header=_header(builder, person, "imaging/chest", chest + timedelta(hours=5), xray),
            examination=lungs,
            modality="DX",
            examined=chest,
            report="Normalstort hjärta. Inga infiltrat, ingen pleuravätska. Inga stas-tecken.",
            referral_reason="Långdragen hosta. Pneumoni? Hjärtsvikt?",
        ),
        ImagingOutcome(
            header=_header(
                builder,
                person,
                "imaging/kidneys",
                kidneys + timedelta(hours=3),
                xray,
                approved=False,
            ),
            examination=Code("UL004", IMAGING_EXAMINATION_OID, "Ultraljud njurar"),
            modality="US",
            examined=kidneys,
            report="Njurarna normalstora, höger 10,8 cm, vänster 11,2 cm. Ingen hydronefros.",
            final=False,
            comment="Preliminärt svar, granskas av andra radiolog.",
            referral_reason="Kronisk njursjukdom stadium 3, sjunkande eGFR. Avflödeshinder?",
        ),
        ImagingOutcome(
            header=_header(
                builder, person, "imaging/wrong-patient", wrong, xray, nullified="Fel patient"
            ),
            examination=lungs,
            modality="DX",
            examined=wrong,
            report="Undersökning registrerad på fel patient.",
        ),
    ]

"""Reports and referrals: DiagnosticReport and ServiceRequest of the test person.

* Laboratory reports, in every region: the results of each of the test person's four
  latest sampling occasions there, grouped by panel (Blodstatus, Lipidstatus, ...), one
  DiagnosticReport per panel whose ``result`` names the region's own lab Observations.
  A result belongs to the first panel of the occasion that holds its analysis. The
  deliberate duplicate results (the B-Hb of 2026-05-20 in Nord and Syd, the CRP of
  2026-09-14 in Nord and Väst) are thus reported by the same report in both regions: same
  panel code, sampling time and laboratory, the type's deliberate duplicates.
* A referral with its answer, in Region Nord: Vårdcentralen Norrby asks the hospital's
  radiology department for a lung X-ray (ServiceRequest, completed); the radiologist's
  report (DiagnosticReport, ``basedOn`` the referral) has a conclusion and the written
  report as ``presentedForm``.
* A referral answered by the clinic asked, in Region Syd: Vårdcentralen Söderslätt refers
  to Endokrinmottagningen for the type 2 diabetes; the clinic's answer (remissvar) is a
  DiagnosticReport ``basedOn`` it, with its conclusion.
* Every child under 13 has a referral from its health centre to the region's paediatric
  clinic for a hearing assessment, and the clinic's answer.
* A referral without an answer yet, in Region Väst: Vårdcentralen Älvstaden refers to
  Hjärtmottagningen for an echocardiography (ServiceRequest, active).

The radiology department has no Organization of its own in the region: it is named by a
logical reference (its HSA-id and name), as the region's systems do for units outside
them.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from datetime import date, datetime, time, timedelta

from fhir_profiles.codes import DIAGNOSTIC_SERVICE_SECTION_SYSTEM, LOINC_SYSTEM, SNOMED_SYSTEM
from fhir_profiles.identifiers import HSA_ID_SYSTEM
from simregions.clock import REFERENCE_DATE
from simregions.data.builder import FhirResource, RegionBuilder, ref
from simregions.labs import ANALYSES_BY_KEY, PANELS

#: Sampling occasions of the test person per region that get their lab reports.
REPORTED_OCCASIONS = 4
#: Each panel's LOINC code and display (a generic laboratory report where LOINC has no
#: panel), and its Swedish name.
_PANEL_CODES = {
    "blodstatus": ("58410-2", "CBC panel - Blood by Automated count", "Blodstatus"),
    "diff": ("57021-8", "CBC W Auto Differential panel - Blood", "Differentialräkning"),
    "elstatus": ("24321-2", "Basic metabolic 2000 panel - Serum or Plasma", "Elstatus"),
    "njure": ("24362-6", "Renal function 2000 panel - Serum or Plasma", "Njurfunktion"),
    "lever": ("24325-3", "Hepatic function 2000 panel - Serum or Plasma", "Leverstatus"),
    "lipider": ("57698-3", "Lipid panel with direct LDL - Serum or Plasma", "Lipidstatus"),
}
_LAB_REPORT = ("11502-2", "Laboratory report")
_PANEL_NAMES = {
    "diabetes": "Diabetesprover",
    "tyreoidea": "Tyreoideaprover",
    "infektion": "Infektionsprover",
    "jarnstatus": "Järnstatus",
    "hjarta": "Hjärtmarkörer",
    "antikoagulation": "PK (INR)",
    "vitaminer": "Vitaminer",
    "kalcium": "Kalciumstatus",
    "psa": "PSA",
}
#: The marker of a deliberately duplicated result -> that of the report that holds it.
_DUPLICATE_RESULTS = {
    "hb-duplicate": "hb-report-duplicate",
    "crp-duplicate": "crp-report-duplicate",
}
_KEY_BY_NAME = {analysis.name_sv: key for key, analysis in ANALYSES_BY_KEY.items()}
_XRAY_CHEST = ("36643-5", "XR Chest 2 Views", "Slätröntgen av lungor")
_ECHO = ("40701008", "Echocardiography (procedure)", "Ultraljud hjärta (ekokardiografi)")
_REFERRAL = ("3457005", "Patient referral (procedure)")
_CONSULT_NOTE = ("11488-4", "Consult note")
_NORMAL = ("281900007", "No abnormality detected (finding)")
_XRAY_REPORT = (
    "Slätröntgen av lungor, frontal och sidobild.\n"
    "Frågeställning: Långdragen hosta sedan sex veckor. Infiltrat?\n"
    "Fynd: Inga infiltrat. Ingen pleuravätska. Normal hjärtstorlek. Fria sinus.\n"
    "Bedömning: Normala lungor. Ingen förändring jämfört med 2019.\n"
)


def _concept(system: str, code: str, display: str, text: str | None = None) -> FhirResource:
    concept: FhirResource = {"coding": [{"system": system, "code": code, "display": display}]}
    if text:
        concept["text"] = text
    return concept


def _section(code: str, display: str) -> list[FhirResource]:
    return [_concept(DIAGNOSTIC_SERVICE_SECTION_SYSTEM, code, display)]


def _radiology(builder: RegionBuilder) -> FhirResource:
    prefix = builder.region.care_provider_hsa_id.split("-")[0]
    hospital = builder.unit("hospital-clinic").name.split(" ", 1)[1]
    return {
        "identifier": {"system": HSA_ID_SYSTEM, "value": f"{prefix}-RONT"},
        "display": f"Röntgenavdelningen {hospital}",
    }


def add_lab_reports(builder: RegionBuilder, patient: FhirResource) -> None:
    """A report per panel of the test person's latest sampling occasions here."""
    occasions: dict[str, list[FhirResource]] = defaultdict(list)
    for resource in builder.resources:
        if resource["resourceType"] == "Observation" and resource["subject"] == patient:
            # Region Syd leaves the offset out of some results of one occasion.
            occasions[resource["effectiveDateTime"][:16]].append(resource)
    latest = sorted(occasions)[-REPORTED_OCCASIONS:]
    for when in latest:
        by_panel: dict[str, list[FhirResource]] = defaultdict(list)
        for observation in occasions[when]:
            key = _KEY_BY_NAME[observation["code"]["text"]]
            panel = next(name for name, keys in PANELS.items() if key in keys)
            by_panel[panel].append(observation)
        for panel, results in by_panel.items():
            report = _lab_report(builder, patient, panel, results)
            for marker in _DUPLICATE_RESULTS:
                if builder.marked.get(marker) in {r["id"] for r in results}:
                    builder.marked[_DUPLICATE_RESULTS[marker]] = report["id"]


def _lab_report(
    builder: RegionBuilder, patient: FhirResource, panel: str, results: list[FhirResource]
) -> FhirResource:
    code, display, name = _PANEL_CODES.get(panel, (*_LAB_REPORT, _PANEL_NAMES.get(panel, "")))
    issued = max(r["issued"] for r in results)
    updated = datetime.fromisoformat(issued.removesuffix("Z"))
    report = builder.resource(
        "DiagnosticReport",
        updated,
        status="final",
        category=_section("LAB", "Laboratory"),
        code=_concept(LOINC_SYSTEM, code, display, name),
        subject=patient,
        effectiveDateTime=results[0]["effectiveDateTime"],
        issued=issued,
        performer=[dict(results[0]["performer"][0])],
        result=[ref(r, r["code"]["text"]) for r in results],
    )
    report["meta"]["lastUpdated"] = issued
    builder.resources.append(report)
    return report


def add_answered_referral(builder: RegionBuilder, patient: FhirResource) -> None:
    """A health centre's referral for a lung X-ray, and the radiologist's report."""
    radiology = _radiology(builder)
    asked = datetime(2026, 3, 10, 10, 40)
    referral = builder.resource(
        "ServiceRequest",
        datetime(2026, 3, 13, 15, 5),
        status="completed",
        intent="order",
        priority="routine",
        category=[_concept(SNOMED_SYSTEM, "363679005", "Imaging (procedure)")],
        code=_concept(LOINC_SYSTEM, *_XRAY_CHEST),
        subject=patient,
        authoredOn=builder.when(asked),
        requester=builder.unit_ref(builder.unit("primary-care")),
        performer=[dict(radiology)],
        reasonCode=[{"text": "Långdragen hosta sedan sex veckor, tidigare rökare. Infiltrat?"}],
    )
    builder.resources.append(referral)
    examined = datetime(2026, 3, 13, 13, 20)
    report = builder.resource(
        "DiagnosticReport",
        datetime(2026, 3, 13, 15, 5),
        basedOn=[ref(referral, "Remiss: Slätröntgen av lungor")],
        status="final",
        category=_section("RAD", "Radiology"),
        code=_concept(LOINC_SYSTEM, *_XRAY_CHEST),
        subject=patient,
        effectiveDateTime=builder.when(examined),
        issued="2026-03-13T14:05:00Z",
        performer=[dict(radiology)],
        conclusion="Normala lungor. Ingen förändring jämfört med 2019.",
        conclusionCode=[_concept(SNOMED_SYSTEM, *_NORMAL)],
        presentedForm=[
            {
                "contentType": "text/plain; charset=utf-8",
                "language": "sv",
                "title": "Röntgenutlåtande: Slätröntgen av lungor",
                "data": base64.b64encode(_XRAY_REPORT.encode()).decode(),
            }
        ],
    )
    builder.resources.append(report)


def add_open_referral(builder: RegionBuilder, patient: FhirResource) -> None:
    """A health centre's referral to the heart clinic, not answered yet."""
    asked = datetime(2026, 10, 12, 14, 10)
    referral = builder.resource(
        "ServiceRequest",
        asked,
        status="active",
        intent="order",
        priority="routine",
        category=[_concept(SNOMED_SYSTEM, "306206005", "Referral to service (procedure)")],
        code=_concept(SNOMED_SYSTEM, *_ECHO),
        subject=patient,
        authoredOn=builder.when(asked),
        requester=builder.unit_ref(builder.unit("primary-care")),
        performer=[builder.unit_ref(builder.unit("hospital-clinic"))],
        reasonCode=[
            {"text": "Förmaksflimmer, bedömning av hjärtfunktion inför fortsatt behandling."}
        ],
    )
    builder.resources.append(referral)


def add_answered_consultation(builder: RegionBuilder, patient: FhirResource) -> None:
    """A health centre's referral to the endocrinology clinic, and the clinic's answer."""
    asked = datetime(2025, 10, 14, 11, 0)
    clinic = builder.unit_ref(builder.unit("hospital-clinic"))
    referral = builder.resource(
        "ServiceRequest",
        datetime(2025, 11, 20, 16, 30),
        status="completed",
        intent="order",
        priority="routine",
        category=[_concept(SNOMED_SYSTEM, "306206005", "Referral to service (procedure)")],
        code=_concept(SNOMED_SYSTEM, *_REFERRAL, "Remiss till Endokrinmottagningen"),
        subject=patient,
        authoredOn=builder.when(asked),
        requester=builder.unit_ref(builder.unit("primary-care")),
        performer=[dict(clinic)],
        reasonCode=[{"text": "Typ 2-diabetes med stigande HbA1c trots metformin."}],
    )
    builder.resources.append(referral)
    seen = datetime(2025, 11, 20, 14, 0)
    answer = builder.resource(
        "DiagnosticReport",
        datetime(2025, 11, 20, 16, 30),
        basedOn=[ref(referral, "Remiss till Endokrinmottagningen")],
        status="final",
        code=_concept(LOINC_SYSTEM, *_CONSULT_NOTE, "Remissvar"),
        subject=patient,
        effectiveDateTime=builder.when(seen),
        issued="2025-11-20T15:30:00Z",
        performer=[dict(clinic)],
        conclusion=(
            "Metformin fortsätter. Tillägg av SGLT2-hämmare rekommenderas med hänsyn till "
            "hjärtsvikt och njurfunktion. Fortsatta kontroller i primärvården."
        ),
    )
    builder.resources.append(answer)


def add_child_referral(builder: RegionBuilder, patient: FhirResource, born: date) -> None:
    """A child's referral for a hearing assessment, a year old or more, and its answer."""
    day = max(born + timedelta(days=400), REFERENCE_DATE - timedelta(days=200))
    asked = datetime.combine(day, time(9, 30))
    clinic = builder.unit_ref(builder.unit("paediatric"))
    referral = builder.resource(
        "ServiceRequest",
        asked + timedelta(days=21),
        status="completed",
        intent="order",
        category=[_concept(SNOMED_SYSTEM, "306206005", "Referral to service (procedure)")],
        code=_concept(SNOMED_SYSTEM, *_REFERRAL, "Remiss: hörselbedömning"),
        subject=patient,
        authoredOn=builder.when(asked),
        requester=builder.unit_ref(builder.unit("primary-care")),
        performer=[dict(clinic)],
        reasonCode=[{"text": "Föräldrarna undrar över hörseln."}],
    )
    builder.resources.append(referral)
    seen = asked + timedelta(days=21, hours=1)
    answer = builder.resource(
        "DiagnosticReport",
        seen + timedelta(hours=3),
        basedOn=[ref(referral, "Remiss: hörselbedömning")],
        status="final",
        code=_concept(LOINC_SYSTEM, *_CONSULT_NOTE, "Remissvar"),
        subject=patient,
        effectiveDateTime=builder.when(seen),
        issued=builder.when(seen + timedelta(hours=3)),
        performer=[dict(clinic)],
        conclusion="Normal hörsel på båda öronen. Ingen uppföljning behövs.",
    )
    builder.resources.append(answer)

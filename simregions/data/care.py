"""The test person's procedures (KVÅ, with SNOMED CT beside), care plans and care team.

Region Syd holds an appendectomy of 1961 as history told by the patient; Region Väst's
heart clinic the electrical cardioversion of the atrial fibrillation in November 2025,
which Region Nord also holds as the same record (the deliberate duplicate of the type),
and the heart-failure care plan and team that have followed the patient since. Region Nord holds a
coordinated individual plan (Samordnad individuell plan, SIP) with the municipality's home
care, Region Syd a type 2 diabetes care plan with its activities; each plan names the
care team (members with roles and HSA-ids) that carries it out. Every child under 13 has
the child health services' team and programme, and those who have reached nine had their
appendix out at nine.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from fhir_profiles.codes import ICD10SE_SYSTEM, KVA_SYSTEM, LOINC_SYSTEM, SNOMED_SYSTEM
from fhir_profiles.identifiers import HSA_ID_SYSTEM
from simregions.clock import REFERENCE_DATE, local_datetime
from simregions.data.builder import FhirResource, RegionBuilder
from simregions.regions import CareUnit, get_region


def _snomed(code: str, display: str, text: str | None = None) -> FhirResource:
    concept: FhirResource = {
        "coding": [{"system": SNOMED_SYSTEM, "code": code, "display": display}]
    }
    if text:
        concept["text"] = text
    return concept


def _procedure_code(kva: str, kva_text: str, snomed: str, snomed_display: str) -> FhirResource:
    return {
        "coding": [
            {"system": KVA_SYSTEM, "code": kva, "display": kva_text},
            {"system": SNOMED_SYSTEM, "code": snomed, "display": snomed_display},
        ],
        "text": kva_text,
    }


def _diagnosis(code: str, text: str) -> FhirResource:
    return {"coding": [{"system": ICD10SE_SYSTEM, "code": code, "display": text}], "text": text}


def _add(
    builder: RegionBuilder, resource_type: str, updated: datetime, **body: Any
) -> FhirResource:
    resource = builder.resource(resource_type, updated, **body)
    builder.resources.append(resource)
    return resource


def _member(practitioner: FhirResource) -> FhirResource:
    """A care-team member: the local Practitioner, with their HSA-id and name beside."""
    return {
        "reference": f"Practitioner/{practitioner['id']}",
        "identifier": practitioner["identifier"][0],
        "display": practitioner["name"][0]["text"],
    }


def add_care(builder: RegionBuilder, patient: FhirResource) -> None:
    """The test person's procedures, care plans and care team as this region recorded them."""
    region = builder.region.id
    if region in ("nord", "vast"):
        builder.marked["cardioversion-duplicate"] = cardioversion(builder, patient)["id"]
    if region == "vast":
        _heart_failure_plan(builder, patient, _heart_failure_team(builder, patient))
    if region == "nord":
        _coordinated_plan(builder, patient)
    if region == "syd":
        _appendectomy(builder, patient)
        _diabetes_plan(builder, patient)


def cardioversion(builder: RegionBuilder, patient: FhirResource) -> FhirResource:
    """The electrical cardioversion of 2025-11-04, identical in Nord and Väst but for ids:
    the performing unit is Region Väst's heart clinic, named by HSA-id."""
    unit = get_region("vast").unit("hospital-clinic")
    performed = datetime(2025, 11, 4, 9, 30)
    return _add(
        builder,
        "Procedure",
        datetime(2025, 11, 4, 11, 5),
        status="completed",
        category=_snomed("277132007", "Therapeutic procedure", "Behandling"),
        code=_procedure_code("DF027", "Elkonvertering", "250980009", "Cardioversion"),
        subject=patient,
        performedDateTime=local_datetime(performed),
        performer=[
            {
                "actor": {
                    "identifier": {"system": HSA_ID_SYSTEM, "value": unit.hsa_id},
                    "display": unit.name,
                }
            }
        ],
        reasonCode=[_diagnosis("I48.9", "Förmaksflimmer och förmaksfladder, ospecificerat")],
        outcome={"text": "Sinusrytm efter en synkroniserad elchock (150 J)."},
        note=[{"text": "Elkonvertering i narkos. Fortsatt behandling med Eliquis."}],
    )


def _appendectomy(builder: RegionBuilder, patient: FhirResource) -> FhirResource:
    """An appendectomy in 1961, recorded in 2019 from what the patient told."""
    recorded = datetime(2019, 5, 6, 11, 10)
    return _add(
        builder,
        "Procedure",
        recorded,
        status="completed",
        category=_snomed("387713003", "Surgical procedure", "Operation"),
        code=_procedure_code("JEA00", "Appendektomi", "80146002", "Appendectomy"),
        subject=patient,
        performedDateTime="1961-08-14",
        recorder={"reference": f"Practitioner/{builder.doctors[1]['id']}"},
        performer=[{"actor": {"display": "Kirurgiska kliniken, Sundsviks lasarett"}}],
        note=[{"text": "Uppgift från patienten vid nybesök 2019."}],
    )


def _longitudinal_team() -> FhirResource:
    return {
        "coding": [
            {
                "system": LOINC_SYSTEM,
                "code": "LA28865-6",
                "display": "Longitudinal care-coordination focused care team",
            }
        ]
    }


def _team(
    builder: RegionBuilder,
    patient: FhirResource,
    unit: CareUnit,
    started: datetime,
    name: str,
    members: list[tuple[FhirResource, FhirResource]],
    reason: FhirResource,
) -> FhirResource:
    """A care team managed by ``unit``: each member (a Practitioner here, else a member
    named by HSA-id or name alone) with their role."""
    participants = []
    for member, role in members:
        if member.get("resourceType") == "Practitioner":
            member = _member(member)
        participants.append(
            {"role": [role], "member": member, "period": {"start": builder.when(started)}}
        )
    return _add(
        builder,
        "CareTeam",
        started,
        status="active",
        category=[_longitudinal_team()],
        name=name,
        subject=patient,
        period={"start": builder.when(started)},
        participant=participants,
        reasonCode=[reason],
        managingOrganization=[builder.unit_ref(unit)],
    )


def _heart_failure_team(builder: RegionBuilder, patient: FhirResource) -> FhirResource:
    unit = builder.unit("hospital-clinic")
    physiotherapist = {
        "identifier": {"system": HSA_ID_SYSTEM, "value": f"{unit.hsa_id}-F201"},
        "display": "Lena Ek",
    }
    return _team(
        builder,
        patient,
        unit,
        datetime(2025, 11, 4, 13, 0),
        "Hjärtsviktsteamet, Hjärtmottagningen Västra sjukhuset",
        [
            (builder.doctors[0], _snomed("17561000", "Cardiologist", "Kardiolog")),
            (
                builder.nurses[0],
                _snomed("224535009", "Registered nurse", "Hjärtsviktssjuksköterska"),
            ),
            (physiotherapist, _snomed("36682004", "Physiotherapist", "Fysioterapeut")),
        ],
        _diagnosis("I50.9", "Hjärtsvikt, ospecificerad"),
    )


def _activity(
    text: str, status: str, scheduled: FhirResource | None = None, kind: str | None = None
) -> FhirResource:
    detail: FhirResource = {"status": status, "description": text}
    if kind:
        detail["kind"] = kind
    if scheduled:
        detail["scheduledPeriod"] = scheduled
    return {"detail": detail}


def _heart_failure_plan(
    builder: RegionBuilder, patient: FhirResource, team: FhirResource
) -> FhirResource:
    """The heart clinic's plan after the cardioversion, carried out by its team."""
    unit = builder.unit("hospital-clinic")
    created = datetime(2025, 11, 4, 13, 30)
    return _add(
        builder,
        "CarePlan",
        created,
        status="active",
        intent="plan",
        category=[_snomed("734163000", "Care plan", "Vårdplan hjärtsvikt")],
        title="Vårdplan hjärtsvikt",
        description="Mål: stabil vikt, inga inläggningar för hjärtsvikt, NYHA II eller bättre.",
        subject=patient,
        period={"start": builder.when(created)},
        created=builder.when(created),
        author=builder.unit_ref(unit),
        careTeam=[{"reference": f"CareTeam/{team['id']}"}],
        activity=[
            _activity("Daglig vägning; kontakta mottagningen vid ökning över 2 kg.", "in-progress"),
            _activity(
                "Återbesök hos hjärtsviktssjuksköterska för dostitrering.",
                "completed",
                {"start": builder.when(datetime(2026, 1, 13, 10, 0))},
                "Appointment",
            ),
            _activity(
                "Ekokardiografi efter sex månader.",
                "completed",
                {"start": builder.when(datetime(2026, 5, 19, 8, 15))},
                "ServiceRequest",
            ),
        ],
    )


def _coordinated_plan(builder: RegionBuilder, patient: FhirResource) -> FhirResource:
    """A SIP made with the municipality's home care after a hospital stay, and its team."""
    unit = builder.unit("primary-care")
    created = datetime(2026, 3, 2, 14, 0)
    home_care = {"display": "Biståndshandläggare, Norrhamns kommun"}
    team = _team(
        builder,
        patient,
        unit,
        created,
        "SIP-team Vårdcentralen Norrby",
        [
            (builder.doctors[2], _snomed("62247001", "General practitioner", "Distriktsläkare")),
            (builder.nurses[1], _snomed("224535009", "Registered nurse", "Distriktssköterska")),
            (home_care, _snomed("106328005", "Social worker", "Biståndshandläggare")),
        ],
        _diagnosis("I50.9", "Hjärtsvikt, ospecificerad"),
    )
    return _add(
        builder,
        "CarePlan",
        created,
        status="active",
        intent="plan",
        category=[_snomed("734163000", "Care plan", "Samordnad individuell plan (SIP)")],
        title="Samordnad individuell plan (SIP)",
        description=(
            "Samordning mellan vårdcentralen, hemsjukvården och kommunens hemtjänst efter "
            "utskrivning från sjukhus. Patienten och dottern har deltagit i SIP-mötet."
        ),
        subject=patient,
        period={"start": builder.when(created)},
        created=builder.when(created),
        author=builder.unit_ref(unit),
        careTeam=[{"reference": f"CareTeam/{team['id']}"}],
        activity=[
            _activity("Hemsjukvården ger läkemedel morgon och kväll.", "in-progress"),
            _activity("Hemtjänst för inköp och städning varje vecka.", "in-progress"),
            _activity(
                "Uppföljande SIP-möte på vårdcentralen.",
                "scheduled",
                {"start": builder.when(datetime(2026, 11, 18, 13, 0))},
                "Appointment",
            ),
        ],
        note=[{"text": "Fast vårdkontakt: distriktssköterskan på vårdcentralen."}],
    )


def _diabetes_plan(builder: RegionBuilder, patient: FhirResource) -> FhirResource:
    """A type 2 diabetes care plan at the endocrine clinic, and the team behind it."""
    unit = builder.unit("hospital-clinic")
    created = datetime(2024, 1, 10, 10, 30)
    team = _team(
        builder,
        patient,
        unit,
        created,
        "Diabetesteamet, Endokrinmottagningen Sundsviks lasarett",
        [
            (builder.doctors[0], _snomed("61894003", "Endocrinologist", "Endokrinolog")),
            (builder.nurses[0], _snomed("224535009", "Registered nurse", "Diabetessjuksköterska")),
        ],
        _diagnosis("E11.9", "Typ 2-diabetes utan komplikationer"),
    )
    return _add(
        builder,
        "CarePlan",
        created,
        status="active",
        intent="plan",
        category=[_snomed("698360004", "Diabetes self management plan", "Vårdplan diabetes")],
        title="Vårdplan typ 2-diabetes",
        description="Mål: HbA1c under 60 mmol/mol utan känningar, blodtryck under 140/85.",
        subject=patient,
        period={"start": builder.when(created)},
        created=builder.when(created),
        author=builder.unit_ref(unit),
        careTeam=[{"reference": f"CareTeam/{team['id']}"}],
        activity=[
            _activity(
                "HbA1c var sjätte månad.",
                "in-progress",
                {"start": builder.when(created)},
                "ServiceRequest",
            ),
            _activity(
                "Årlig fotundersökning hos diabetessjuksköterska.",
                "completed",
                {"start": builder.when(datetime(2026, 2, 12, 9, 0))},
                "Appointment",
            ),
            _activity(
                "Ögonbottenfotografering vartannat år.",
                "not-started",
                {"start": builder.when(datetime(2027, 1, 20, 8, 30))},
                "Appointment",
            ),
        ],
    )


def add_child_care(builder: RegionBuilder, patient: FhirResource, born: date) -> None:
    """A child's care at the child health services (barnhälsovården, BVC): its team and the
    programme's plan, and, for those who have reached nine, an appendectomy at nine."""
    unit = builder.unit("paediatric")
    started = datetime.combine(born + timedelta(days=7), time(10, 0))
    team = _team(
        builder,
        patient,
        unit,
        started,
        f"Barnhälsovården, {unit.name}",
        [
            (builder.nurses[-1], _snomed("224535009", "Registered nurse", "BVC-sjuksköterska")),
            (builder.doctors[-1], _snomed("82296001", "Pediatrician", "Barnläkare")),
        ],
        {"text": "Hälsoövervakning enligt barnhälsovårdens program"},
    )
    school_start = started.replace(year=born.year + 6)
    visits = [
        ("Hembesök av BVC-sjuksköterska.", started),
        ("Hälsobesök vid 18 månader.", started + timedelta(days=540)),
        ("Hälsobesök vid 4 års ålder.", started.replace(year=born.year + 4)),
    ]
    today = datetime.combine(REFERENCE_DATE, time(0, 0))
    _add(
        builder,
        "CarePlan",
        started,
        status="completed" if school_start < today else "active",
        intent="plan",
        category=[_snomed("734163000", "Care plan", "Barnhälsovårdens program")],
        title="Barnhälsovårdens nationella program",
        subject=patient,
        period={"start": builder.when(started), "end": builder.when(school_start)},
        author=builder.unit_ref(unit),
        careTeam=[{"reference": f"CareTeam/{team['id']}"}],
        activity=[
            _activity(
                text,
                "completed" if when < today else "scheduled",
                {"start": builder.when(when)},
                "Appointment",
            )
            for text, when in visits
        ],
    )
    operated = datetime.combine(born + timedelta(days=9 * 365 + 120), time(21, 40))
    if operated < today - timedelta(days=30):
        _add(
            builder,
            "Procedure",
            operated + timedelta(days=1),
            status="completed",
            category=_snomed("387713003", "Surgical procedure", "Operation"),
            code=_procedure_code("JEA01", "Laparoskopisk appendektomi", "80146002", "Appendectomy"),
            subject=patient,
            performedDateTime=builder.when(operated),
            performer=[{"actor": builder.unit_ref(builder.unit("emergency"))}],
            reasonCode=[_diagnosis("K35.8", "Akut appendicit, annan och ospecificerad")],
        )

"""The overview contracts on the wire: GetDiagnosis 2 and GetAlertInformation 2
(clinicalprocess:healthcond:description) and GetVaccinationHistory 2
(clinicalprocess:activityprescription:actoutcome).

Element names and order follow the national schemas; GetVaccinationHistory 2 is written
with the elements of its 1.0 schema (``registrationRecord``, ``administrationRecord``) and
the header of the other contracts. Diagnosis types are the national enumeration's words
(``Huvuddiagnos``, ``Bidiagnos``); alert information fills exactly one of the body's
alternatives (hypersensitivity, seriousDisease, treatment, communicableDisease,
restrictionOfCare, unstructuredAlertInformation).
"""

from __future__ import annotations

from simregions.legacy.contracts import (
    GET_ALERT_INFORMATION,
    GET_DIAGNOSIS,
    GET_VACCINATION_HISTORY,
    ICD10SE_OID,
)
from simregions.legacy.records import Alert, Code, DiagnosisEntry, Vaccination
from simregions.legacy.spec import LegacyRegionSpec
from simregions.legacy.wire import Element, Writer, day, decimal_text, timestamp


def diagnosis_response(
    region: LegacyRegionSpec, pnr: str, items: tuple[DiagnosisEntry, ...]
) -> bytes:
    """``GetDiagnosisResponse``."""
    writer = Writer(GET_DIAGNOSIS, region)
    for item in items:
        record = writer.record("diagnosis")
        writer.header(record, "diagnosisHeader", item.header, pnr)
        body = writer.el(record, "diagnosisBody")
        writer.el(body, "typeOfDiagnosis", "Huvuddiagnos" if item.main else "Bidiagnos")
        writer.el(body, "chronicDiagnosis", "true" if item.chronic else "false")
        writer.el(body, "diagnosisTime", timestamp(item.time))
        writer.code(body, "diagnosisCode", item.icd10, ICD10SE_OID, item.display)
        if item.related is not None:
            related = writer.el(body, "relatedDiagnosis")
            writer.el(related, "documentId", item.related)
    writer.result()
    return writer.tobytes()


def _cv(writer: Writer, parent: Element, name: str, code: Code | None) -> None:
    if code is not None:
        writer.code(parent, name, code.code, code.system, code.display)


def alert_information_response(
    region: LegacyRegionSpec, pnr: str, items: tuple[Alert, ...]
) -> bytes:
    """``GetAlertInformationResponse``."""
    writer = Writer(GET_ALERT_INFORMATION, region)
    for item in items:
        record = writer.record("alertInformation")
        writer.header(record, "alertInformationHeader", item.header, pnr)
        body = writer.el(record, "alertInformationBody")
        _cv(writer, body, "typeOfAlertInformation", item.type)
        if item.ascertained is not None:
            writer.el(body, "ascertainedDate", day(item.ascertained))
        period = writer.el(body, "validityTimePeriod")
        writer.el(period, "start", timestamp(item.start))
        if item.end is not None:
            writer.el(period, "end", timestamp(item.end))
        if item.comment is not None:
            writer.el(body, "alertInformationComment", item.comment)
        if item.obsolete is not None:
            writer.el(body, "obsoleteTime", timestamp(item.obsolete))
        if item.obsolete_comment is not None:
            writer.el(body, "obsoleteComment", item.obsolete_comment)
        _alert_kind(writer, body, item)
    writer.result()
    return writer.tobytes()


def _alert_kind(writer: Writer, body: Element, item: Alert) -> None:
    kind = writer.el(body, item.kind)
    if item.kind == "hypersensitivity":
        _cv(writer, kind, "typeOfHypersensitivity", item.hypersensitivity_type)
        _cv(writer, kind, "degreeOfSeverity", item.severity)
        _cv(writer, kind, "degreeOfCertainty", item.certainty)
        if item.atc_substance is not None:
            drug = writer.el(kind, "pharmaceuticalHypersensitivity")
            _cv(writer, drug, "atcSubstance", item.atc_substance)
        elif item.agent is not None:
            other = writer.el(kind, "otherHypersensitivity")
            writer.el(other, "hypersensitivityAgent", item.agent)
    elif item.kind == "seriousDisease":
        _cv(writer, kind, "disease", item.code)
    elif item.kind == "treatment":
        writer.el(kind, "treatmentDescription", item.text)
        _cv(writer, kind, "treatmentCode", item.code)
        for medicine in item.medicines:
            _cv(writer, kind, "pharmaceuticalTreatment", medicine)
    elif item.kind == "communicableDisease":
        _cv(writer, kind, "communicableDiseaseCode", item.code)
    elif item.kind == "restrictionOfCare":
        writer.el(kind, "restrictionOfCareComment", item.text)
    else:
        writer.el(kind, "unstructuredAlertInformationHeading", item.heading)
        writer.el(kind, "unstructuredAlertInformationContent", item.text)


def vaccination_response(
    region: LegacyRegionSpec, pnr: str, items: tuple[Vaccination, ...]
) -> bytes:
    """``GetVaccinationHistoryResponse``: one administered dose per record."""
    writer = Writer(GET_VACCINATION_HISTORY, region)
    for item in items:
        unit = item.header.unit
        record = writer.record("vaccinationMedicalRecord")
        writer.header(record, "vaccinationMedicalRecordHeader", item.header, pnr)
        body = writer.el(record, "vaccinationMedicalRecordBody")
        registration = writer.el(body, "registrationRecord")
        writer.org_unit(registration, "careGiverOrg", item.header.care_giver_hsa_id, region.name)
        writer.el(registration, "sourceSystemName", region.vendor)
        contact = writer.el(registration, "sourceSystemContact")
        writer.el(contact, "personName", "Östjournal förvaltning")
        writer.el(registration, "date", day(item.given))
        given = writer.el(body, "administrationRecord")
        _cv(writer, given, "vaccinationProgramName", item.programme)
        writer.org_unit(given, "performerOrg", unit.hsa_id, unit.name)
        if item.performer is not None:
            performer = writer.el(given, "performer")
            writer.el(performer, "hsaid", item.performer.hsa_id)
            writer.el(performer, "personName", item.performer.name)
        if item.amount_ml is not None:
            dosage = writer.el(given, "dosage")
            quantity = writer.el(dosage, "quantity")
            writer.el(quantity, "value", decimal_text(item.amount_ml))
            writer.el(quantity, "unit", "ml")
            writer.el(dosage, "displayName", f"{item.product} {decimal_text(item.amount_ml)} ml")
        if item.dose is not None:
            writer.el(given, "isDoseComplete", "true")
            writer.el(given, "doseOrdinalNumber", str(item.dose))
        if item.doses is not None:
            writer.el(given, "numberOfPrescribedDoses", str(item.doses))
        if item.source is not None:
            writer.el(given, "sourceDescription", item.source)
        _cv(writer, given, "vaccineType", item.vaccine)
        writer.original_text(given, "vaccineName", item.product)
        if item.batch is not None:
            writer.el(given, "vaccineBatchId", item.batch)
        if item.manufacturer is not None:
            writer.el(given, "vaccineManufacturer", item.manufacturer)
    writer.result()
    return writer.tobytes()

"""Referral, imaging and maternity outcomes on the wire: GetReferralOutcome 3,
GetImagingOutcome 1 and GetMaternityMedicalHistory 2 (clinicalprocess:healthcond:actoutcome).

A referral outcome carries the answer (``referralOutcomeTypeCode`` ``SS`` for a final
answer, ``SR`` for an answer to the question so far) and, in ``referral``, the referral it
answers. Östjournal also lists referrals still waiting for an answer: the answer's type
and text are then left out. An imaging outcome carries the report (``typeOfResult``
``DEF`` or ``PREL``), the examination (``imageRecording``) and the referral's question.
A maternity record carries a ``registrationRecord`` or a ``pregnancyCheckupRecord``, its
quantities as value and unit.
"""

from __future__ import annotations

from datetime import timedelta

from simregions.legacy.contracts import (
    GET_IMAGING_OUTCOME,
    GET_MATERNITY_MEDICAL_HISTORY,
    GET_REFERRAL_OUTCOME,
)
from simregions.legacy.records import ImagingOutcome, MaternityRecord, Referral
from simregions.legacy.spec import LegacyRegionSpec
from simregions.legacy.wire import Element, Writer, day, decimal_text, timestamp


def referral_outcome_response(
    region: LegacyRegionSpec, pnr: str, items: tuple[Referral, ...]
) -> bytes:
    """``GetReferralOutcomeResponse``."""
    writer = Writer(GET_REFERRAL_OUTCOME, region)
    for item in items:
        record = writer.record("referralOutcome")
        writer.header(record, "referralOutcomeHeader", item.header, pnr)
        body = writer.el(record, "referralOutcomeBody")
        if item.answer is not None:
            writer.el(body, "referralOutcomeTypeCode", "SS" if item.final else "SR")
        writer.el(body, "referralOutcomeTitle", item.title)
        if item.answer is not None:
            writer.el(body, "referralOutcomeText", item.answer)
        for finding in item.findings:
            information = writer.el(body, "clinicalInformation")
            writer.code(information, "clinicalInformationCode", finding.code, finding.system,
                        finding.display)  # fmt: skip
            writer.el(information, "clinicalInformationText", finding.display)
        if item.act is not None:
            act = writer.el(body, "act")
            writer.el(act, "actText", item.act)
            if item.act_time is not None:
                writer.el(act, "actTime", timestamp(item.act_time))
        referral = writer.el(body, "referral")
        writer.el(referral, "referralId", item.referral_id)
        writer.el(referral, "referralReason", item.reason)
        writer.el(referral, "referralTime", timestamp(item.sent))
        author = writer.el(referral, "referralAuthor")
        writer.el(author, "authorTime", timestamp(item.sent))
        writer.el(author, "healthcareProfessionalHSAId", item.referrer.hsa_id)
        writer.el(author, "healthcareProfessionalName", item.referrer.name)
        unit = item.referring_unit
        writer.org_unit(author, "healthcareProfessionalOrgUnit", unit.hsa_id, unit.name)
    writer.result()
    return writer.tobytes()


def imaging_outcome_response(
    region: LegacyRegionSpec, pnr: str, items: tuple[ImagingOutcome, ...]
) -> bytes:
    """``GetImagingOutcomeResponse``."""
    writer = Writer(GET_IMAGING_OUTCOME, region)
    for item in items:
        record = writer.record("imagingOutcome")
        writer.header(record, "imagingOutcomeHeader", item.header, pnr)
        body = writer.el(record, "imagingOutcomeBody")
        writer.original_text(body, "examinationSpeciality", "Radiologi")
        writer.el(body, "typeOfResult", "DEF" if item.final else "PREL")
        writer.el(body, "resultTime", timestamp(item.header.author_time))
        writer.el(body, "resultReport", item.report)
        if item.comment is not None:
            writer.el(body, "resultComment", item.comment)
        recording = writer.el(body, "imageRecording")
        exam = item.examination
        writer.code(recording, "examinationActivity", exam.code, exam.system, exam.display)
        period = writer.el(recording, "examinationTimePeriod")
        writer.el(period, "start", timestamp(item.examined))
        writer.el(period, "end", timestamp(item.examined + timedelta(minutes=15)))
        writer.el(recording, "examinationUnit", item.header.unit.name)
        modality = writer.el(recording, "modalityData")
        writer.el(modality, "typeOfModality", item.modality)
        if item.referral_reason is not None:
            referral = writer.el(body, "referral")
            writer.el(referral, "referralId", f"{item.header.document_id}-remiss")
            writer.el(referral, "referralReason", item.referral_reason)
    writer.result()
    return writer.tobytes()


def maternity_response(
    region: LegacyRegionSpec, pnr: str, items: tuple[MaternityRecord, ...]
) -> bytes:
    """``GetMaternityMedicalHistoryResponse``."""
    writer = Writer(GET_MATERNITY_MEDICAL_HISTORY, region)
    for item in items:
        record = writer.record("maternityMedicalRecord")
        writer.header(record, "maternityMedicalRecordHeader", item.header, pnr)
        body = writer.el(record, "maternityMedicalRecordBody")
        if item.kind == "registration":
            part = writer.el(body, "registrationRecord")
            for name, value in (
                ("lastMenstrualPeriod", item.last_menstrual_period),
                ("expectedDayOfDeliveryFromLastMenstrualPeriod", item.expected_delivery),
                ("expectedDayOfDeliveryFromUltrasoundScan", item.expected_delivery_ultrasound),
            ):
                if value is not None:
                    writer.el(part, name, day(value))
            _quantity(writer, part, "length", item.height_cm, "cm")
            _quantity(writer, part, "weight", item.weight_kg, "kg")
            continue
        part = writer.el(body, "pregnancyCheckupRecord")
        if item.weeks is not None:
            writer.el(part, "completeWeeksOfGestation", str(item.weeks))
        _quantity(writer, part, "weight", item.weight_kg, "kg")
        _quantity(writer, part, "symphysisFundalHeight", item.fundal_height_cm, "cm")
        _quantity(writer, part, "haemoglobin", item.haemoglobin, "g/L")
        _quantity(writer, part, "bloodPressureSystolic", item.systolic, "mm[Hg]")
        _quantity(writer, part, "bloodPressureDiastolic", item.diastolic, "mm[Hg]")
        _quantity(writer, part, "fetalHeartRate", item.fetal_heart_rate, "/min")
    writer.result()
    return writer.tobytes()


def _quantity(writer: Writer, parent: Element, name: str, value: float | None, unit: str) -> None:
    if value is not None:
        holder = writer.el(parent, name)
        writer.el(holder, "value", decimal_text(value))
        writer.el(holder, "unit", unit)

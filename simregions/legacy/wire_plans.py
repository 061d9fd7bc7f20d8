"""Care plans and functional status on the wire: GetCarePlans 2
(clinicalprocess:logistics:logistics) and GetFunctionalStatus 2
(clinicalprocess:healthcond:description).

A care plan's header carries its title (``documentTitle``) and time (``documentTime``);
its body the national type (``typeOfCarePlan``: SIP, VP, RP, ...), the content as
multimedia (``mediaType`` and base64 ``value``) and the participating units. A functional
status assessment's body carries its category (KV Informationstyp ``pad-pad`` or
``fun-fun``) and either the PADL assessments or the disability (an ICF code).
"""

from __future__ import annotations

import base64

from simregions.legacy.contracts import (
    GET_CARE_PLANS,
    GET_FUNCTIONAL_STATUS,
    INFORMATION_TYPE_OID,
)
from simregions.legacy.records import CarePlanRecord, FunctionalAssessment
from simregions.legacy.spec import LegacyRegionSpec
from simregions.legacy.wire import Writer, timestamp

_CATEGORIES = {"pad-pad": "PADL-bedömning", "fun-fun": "Funktionsnedsättningsbedömning"}


def care_plans_response(
    region: LegacyRegionSpec, pnr: str, items: tuple[CarePlanRecord, ...]
) -> bytes:
    """``GetCarePlansResponse``."""
    writer = Writer(GET_CARE_PLANS, region)
    for item in items:
        record = writer.record("carePlan")
        writer.header(record, "carePlanHeader", item.header, pnr)
        header = record.find(f"{{{GET_CARE_PLANS.core_ns}}}carePlanHeader")
        assert header is not None
        # documentTitle and documentTime follow the documentId and sourceSystemHSAId.
        title = writer.el(header, "documentTitle", item.title)
        time = writer.el(header, "documentTime", timestamp(item.created))
        for element in (time, title):
            header.remove(element)
            header.insert(2, element)
        body = writer.el(record, "carePlanBody")
        writer.el(body, "typeOfCarePlan", item.plan_type)
        for media_type, data in item.content:
            content = writer.el(body, "content")
            writer.el(content, "mediaType", media_type)
            writer.el(content, "value", base64.b64encode(data).decode("ascii"))
        for unit in item.participants:
            participant = writer.el(body, "participatingCareUnitHSAId")
            writer.el(participant, "root", "1.2.752.129.2.1.4.1")
            writer.el(participant, "extension", unit.hsa_id)
    writer.result()
    return writer.tobytes()


def functional_status_response(
    region: LegacyRegionSpec, pnr: str, items: tuple[FunctionalAssessment, ...]
) -> bytes:
    """``GetFunctionalStatusResponse``."""
    writer = Writer(GET_FUNCTIONAL_STATUS, region)
    for item in items:
        record = writer.record("functionalStatusAssessment")
        writer.header(record, "functionalStatusAssessmentHeader", item.header, pnr)
        body = writer.el(record, "functionalStatusAssessmentBody")
        writer.code(body, "assessmentCategory", item.category, INFORMATION_TYPE_OID,
                    _CATEGORIES[item.category])  # fmt: skip
        if item.comment is not None and item.disability is None:
            writer.el(body, "comment", item.comment)
        for activity, assessment in item.padl:
            padl = writer.el(body, "padl")
            writer.code(padl, "typeOfAssessment", activity.code, activity.system,
                        activity.display)  # fmt: skip
            writer.el(padl, "assessment", assessment)
        if item.disability is not None:
            disability = writer.el(body, "disability")
            code = item.disability
            writer.code(disability, "disabilityAssessment", code.code, code.system, code.display)
            if item.comment is not None:
                writer.el(disability, "comment", item.comment)
    writer.result()
    return writer.tobytes()

"""What a person reports themselves (own measurements and symptom descriptions): the
measurements the gateway accepts (LOINC code and UCUM unit), the symptom form it serves
(a Questionnaire), and how the data is marked as reported by the patient.

The gateway keeps this data as the person's own source, :data:`OWN_SOURCE_ID`: each
resource's ``meta.source`` names it (``urn:samlad:source:patient-reported#Type/id``), its
``meta.tag`` carries :data:`PATIENT_REPORTED_TAG`, and an Observation's ``performer`` is the
patient.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from fhir_profiles.codes import LOINC_SYSTEM, OBSERVATION_CATEGORY_SYSTEM, UCUM_SYSTEM
from fhir_profiles.identifiers import SOURCE_URI

#: The id of the person's own source (never a configured source's id: those are regions).
OWN_SOURCE_ID = "patient-reported"
OWN_SOURCE_NAME = "Rapporterat av patienten"

#: Where the information came from: the patient themselves.
INFORMATION_SOURCE_SYSTEM = "https://samlad.se/fhir/CodeSystem/information-source"
PATIENT_REPORTED_TAG: Mapping[str, str] = MappingProxyType(
    {
        "system": INFORMATION_SOURCE_SYSTEM,
        "code": "patient-reported",
        "display": "Reported by the patient",
    }
)


def is_patient_reported(resource: Mapping[str, Any]) -> bool:
    """Whether ``resource`` (as the gateway serves it) is of the person's own source: its
    ``meta.source`` names it (the gateway sets every resource's; no region has its id)."""
    meta = resource.get("meta")
    source = meta.get("source") if isinstance(meta, Mapping) else None
    return isinstance(source, str) and source.startswith(f"{SOURCE_URI}{OWN_SOURCE_ID}#")


#: The types only the own source holds: never asked of a configured source, served from
#: the own source alone (in ``$everything`` and by id).
OWN_ONLY_TYPES: tuple[str, ...] = ("QuestionnaireResponse",)

#: The category every own measurement has.
VITAL_SIGNS_CATEGORY = "vital-signs"
VITAL_SIGNS_CODING: Mapping[str, str] = MappingProxyType(
    {"system": OBSERVATION_CATEGORY_SYSTEM, "code": VITAL_SIGNS_CATEGORY, "display": "Vital Signs"}
)


@dataclass(frozen=True, slots=True)
class Measurement:
    """One measurement a person may record: its LOINC code, its one UCUM unit and the
    values that can be real (a value outside is refused, not stored)."""

    loinc: str
    display: str
    unit: str
    low: float
    high: float
    #: The unit as shown (``Quantity.unit``), when not the UCUM code itself.
    shown: str = ""


_SYSTOLIC = Measurement("8480-6", "Systolic blood pressure", "mm[Hg]", 30, 300, "mmHg")
_DIASTOLIC = Measurement("8462-4", "Diastolic blood pressure", "mm[Hg]", 10, 250, "mmHg")

#: The blood pressure panel: its values are the systolic and diastolic components.
BLOOD_PRESSURE_PANEL = "85354-9"
BLOOD_PRESSURE_DISPLAY = "Blood pressure panel with all children optional"
BLOOD_PRESSURE_COMPONENTS: Mapping[str, Measurement] = MappingProxyType(
    {m.loinc: m for m in (_SYSTOLIC, _DIASTOLIC)}
)

#: The measurements with one value a person may record, by LOINC code.
MEASUREMENTS: Mapping[str, Measurement] = MappingProxyType(
    {
        m.loinc: m
        for m in (
            _SYSTOLIC,
            _DIASTOLIC,
            Measurement("8867-4", "Heart rate", "/min", 10, 300),
            Measurement("29463-7", "Body weight", "kg", 0.3, 500),
            Measurement("8302-2", "Body height", "cm", 20, 260),
            Measurement("8310-5", "Body temperature", "Cel", 25, 45, "°C"),
            Measurement("59408-5", "Oxygen saturation by pulse oximetry", "%", 40, 100),
            Measurement(
                "14743-9",
                "Glucose [Moles/volume] in Capillary blood by Glucometer",
                "mmol/L",
                0.5,
                50,
            ),
        )
    }
)

#: Every LOINC code an own Observation may have.
SUPPORTED_CODES = frozenset({BLOOD_PRESSURE_PANEL, *MEASUREMENTS})

#: The image types an answer's attachment may be, and how each file begins.
ATTACHMENT_SIGNATURES: Mapping[str, bytes] = MappingProxyType(
    {"image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG\r\n\x1a\n"}
)

#: The symptom form (1177 direkt's "describe your symptoms once").
SYMPTOM_FORM_ID = "symptom-form"
SYMPTOM_FORM_URL = "https://samlad.se/fhir/Questionnaire/symptom-form"
SYMPTOM_SEVERITY_SYSTEM = "https://samlad.se/fhir/CodeSystem/symptom-severity"

_SEVERITIES = (("mild", "Mild"), ("moderate", "Moderate"), ("severe", "Severe"))

SYMPTOM_FORM: Mapping[str, Any] = MappingProxyType(
    {
        "resourceType": "Questionnaire",
        "id": SYMPTOM_FORM_ID,
        "url": SYMPTOM_FORM_URL,
        "version": "1",
        "name": "SymptomForm",
        "title": "Symptom description (Symtombeskrivning)",
        "status": "active",
        "subjectType": ["Patient"],
        "item": [
            {
                "linkId": "symptom",
                "text": "What is troubling you? (Vad besvärar dig?)",
                "type": "string",
                "required": True,
                "maxLength": 2000,
            },
            {"linkId": "onset", "text": "When did it start? (När började det?)", "type": "date"},
            {
                "linkId": "severity",
                "text": "How severe is it? (Hur svårt är det?)",
                "type": "choice",
                "answerOption": [
                    {"valueCoding": {"system": SYMPTOM_SEVERITY_SYSTEM, "code": c, "display": d}}
                    for c, d in _SEVERITIES
                ],
            },
            {"linkId": "fever", "text": "Do you have a fever? (Har du feber?)", "type": "boolean"},
            {
                "linkId": "photo",
                "text": "A photo, JPEG or PNG (Ett foto)",
                "type": "attachment",
            },
        ],
    }
)

#: The Questionnaires the gateway serves, by id.
QUESTIONNAIRES: Mapping[str, Mapping[str, Any]] = MappingProxyType({SYMPTOM_FORM_ID: SYMPTOM_FORM})
#: By canonical URL (what a QuestionnaireResponse's ``questionnaire`` names).
QUESTIONNAIRES_BY_URL: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {str(q["url"]): q for q in QUESTIONNAIRES.values()}
)

__all__ = ["LOINC_SYSTEM", "UCUM_SYSTEM"]

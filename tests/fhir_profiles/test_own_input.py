"""What a person may send of their own data: only the accepted elements, a supported code
in its unit, a real value; an image of the kind it says, within the cap. Messages name
elements, never values."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest

from fhir_profiles.own_data import SYMPTOM_FORM_URL
from fhir_profiles.own_input import OwnInputError, checked_observation, checked_response

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
VITAL = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs",
        }
    ]
}


def weight(**changes: Any) -> dict[str, Any]:
    body = {
        "resourceType": "Observation",
        "status": "final",
        "category": [VITAL],
        "code": {"coding": [{"system": LOINC, "code": "29463-7"}]},
        "subject": {"reference": "Patient/abc"},
        "effectiveDateTime": "2026-12-06T08:00:00+01:00",
        "valueQuantity": {"value": 72.5, "unit": "kg", "system": UCUM, "code": "kg"},
    }
    return body | changes


def test_a_weight_is_rebuilt_from_what_is_accepted() -> None:
    checked = checked_observation(weight(id="ignored", performer=[{"reference": "x"}]), NOW)
    assert "id" not in checked
    assert "performer" not in checked  # the gateway sets it
    assert checked["code"]["coding"][0]["display"] == "Body weight"
    assert checked["valueQuantity"] == {"value": 72.5, "unit": "kg", "system": UCUM, "code": "kg"}


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({"valueQuantity": {"value": 72.5, "system": UCUM, "code": "g"}}, "valueQuantity"),
        ({"valueQuantity": {"value": 7250, "system": UCUM, "code": "kg"}}, "valueQuantity.value"),
        ({"valueQuantity": {"value": True, "system": UCUM, "code": "kg"}}, "valueQuantity.value"),
        ({"code": {"coding": [{"system": LOINC, "code": "2345-7"}]}}, "code"),
        ({"status": "preliminary"}, "status"),
        ({"extension": [{"url": "x"}]}, "Observation.extension"),
        ({"contained": []}, "Observation.contained"),
        ({"note": [{"text": "<script>\x07</script>"}]}, "note[0].text"),
        ({"effectiveDateTime": "2026-12-06"}, "effectiveDateTime"),
        ({"effectiveDateTime": "2027-01-01T00:00:00Z"}, "effectiveDateTime"),
        ({"identifier": [{"system": "urn:x", "value": "a b"}]}, "identifier[0].value"),
    ],
)
def test_what_cannot_be_stored_names_the_element(changes: dict[str, Any], where: str) -> None:
    with pytest.raises(OwnInputError) as refused:
        checked_observation(weight(**changes), NOW)
    assert str(refused.value).startswith(where)
    assert refused.value.status == 422
    assert "7250" not in str(refused.value)


def _form(attachment: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": SYMPTOM_FORM_URL,
        "status": "completed",
        "subject": {"reference": "Patient/abc"},
        "item": [
            {"linkId": "symptom", "answer": [{"valueString": "Utslag"}]},
            {"linkId": "photo", "answer": [{"valueAttachment": attachment}]},
        ],
    }


def _image(raw: bytes, kind: str = "image/jpeg") -> dict[str, Any]:
    return {"contentType": kind, "data": base64.b64encode(raw).decode()}


def test_an_image_within_the_cap_is_kept_with_its_size() -> None:
    jpeg = b"\xff\xd8\xff\xe0" + b"\x00" * 100
    checked = checked_response(_form(_image(jpeg)), NOW, 1000)
    assert checked["item"][1]["answer"][0]["valueAttachment"]["size"] == len(jpeg)
    assert checked["questionnaire"] == f"{SYMPTOM_FORM_URL}|1"


@pytest.mark.parametrize(
    ("attachment", "status"),
    [
        (_image(b"\xff\xd8\xff" + b"\x00" * 2000), 413),
        (_image(b"\x89PNG\r\n\x1a\n", "image/jpeg"), 422),
        (_image(b"<svg/>", "image/svg+xml"), 422),
        ({"contentType": "image/png", "data": "not base64!"}, 422),
        ({"contentType": "image/png", "url": "https://elsewhere.invalid/x.png"}, 422),
    ],
)
def test_an_image_that_cannot_be_kept(attachment: dict[str, Any], status: int) -> None:
    with pytest.raises(OwnInputError) as refused:
        checked_response(_form(attachment), NOW, 1000)
    assert refused.value.status == status


def test_a_form_the_gateway_does_not_serve_or_an_unknown_item() -> None:
    with pytest.raises(OwnInputError):
        checked_response(_form(_image(b"\xff\xd8\xff")) | {"questionnaire": "urn:other"}, NOW, 1000)
    body = _form(_image(b"\xff\xd8\xff"))
    body["item"].append({"linkId": "secret", "answer": [{"valueString": "x"}]})
    with pytest.raises(OwnInputError):
        checked_response(body, NOW, 1000)
    body = _form(_image(b"\xff\xd8\xff"))
    body["item"] = body["item"][1:]  # the required symptom left out
    with pytest.raises(OwnInputError):
        checked_response(body, NOW, 1000)

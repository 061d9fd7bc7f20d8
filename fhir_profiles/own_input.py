"""What a person may send of their own data, checked element by element before anything is
stored: an Observation of a supported measurement (:mod:`fhir_profiles.own_data`), or a
QuestionnaireResponse to a Questionnaire the gateway serves.

Only the elements named here are taken; any other element, narrative text, an extension,
a contained resource, control characters in text, a value that cannot be real, a code
or unit outside the lists: refused with a message naming the element, never its value.
The checked resource is rebuilt from the accepted elements only, so nothing unchecked is
kept.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from fhir_profiles.codes import LOINC_SYSTEM, OBSERVATION_CATEGORY_SYSTEM, UCUM_SYSTEM
from fhir_profiles.datetimes import InvalidDateTime, normalise_datetime
from fhir_profiles.own_data import (
    ATTACHMENT_SIGNATURES,
    BLOOD_PRESSURE_COMPONENTS,
    BLOOD_PRESSURE_DISPLAY,
    BLOOD_PRESSURE_PANEL,
    MEASUREMENTS,
    QUESTIONNAIRES_BY_URL,
    VITAL_SIGNS_CATEGORY,
    VITAL_SIGNS_CODING,
    Measurement,
)

#: The longest free text kept (a note, a string answer).
MAX_TEXT = 2000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_IDENTIFIER_SYSTEM = re.compile(r"^(https?://|urn:)[^\s|]{1,200}$")
_IDENTIFIER_VALUE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class OwnInputError(ValueError):
    """What was sent cannot be stored; ``status`` is 422 (not what the gateway accepts)
    or 413 (an attachment over the size cap). The message names elements only."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def _fail(where: str, what: str) -> OwnInputError:
    return OwnInputError(f"{where}: {what}")


def _only(body: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for key in body:
        if key not in allowed:
            raise _fail(f"{where}.{key}", "not accepted in what a person records")


def _text(value: Any, where: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, "must be non-empty text")
    if len(value) > limit:
        raise _fail(where, f"longer than {limit} characters")
    if _CONTROL.search(value):
        raise _fail(where, "holds control characters")
    return value


def _when(value: Any, where: str, now: datetime) -> str:
    """A dateTime with a time of day and offset, not in the future (a minute's leeway)."""
    try:
        text = normalise_datetime(value)
    except InvalidDateTime as exc:
        raise _fail(where, "not a FHIR dateTime") from exc
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise _fail(where, "needs a date and a time of day") from exc
    if moment.tzinfo is None:
        raise _fail(where, "needs a date and a time of day")
    if (moment - now).total_seconds() > 60:
        raise _fail(where, "is in the future")
    return text


def _reference(value: Any, where: str) -> str:
    if not isinstance(value, dict) or set(value) - {"reference", "display"}:
        raise _fail(where, "must be a reference")
    return _text(value.get("reference"), f"{where}.reference", 200)


def _identifiers(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not 1 <= len(value) <= 3:
        raise _fail("identifier", "must be a list of one to three identifiers")
    kept = []
    for index, item in enumerate(value):
        where = f"identifier[{index}]"
        if not isinstance(item, dict) or set(item) - {"system", "value"}:
            raise _fail(where, "must have a system and a value only")
        system, text = item.get("system"), item.get("value")
        if not isinstance(system, str) or not _IDENTIFIER_SYSTEM.match(system):
            raise _fail(f"{where}.system", "must be a URI")
        if not isinstance(text, str) or not _IDENTIFIER_VALUE.match(text):
            raise _fail(f"{where}.value", "must be 1-64 letters, digits or . _ : -")
        kept.append({"system": system, "value": text})
    return kept


def _loinc(code: Any, where: str) -> str:
    codings = code.get("coding") if isinstance(code, dict) else None
    if not isinstance(codings, list):
        raise _fail(where, "must have a coding")
    for coding in codings:
        if isinstance(coding, dict) and coding.get("system") == LOINC_SYSTEM:
            found = coding.get("code")
            if found == BLOOD_PRESSURE_PANEL or found in MEASUREMENTS:
                return str(found)
    raise _fail(where, "no supported LOINC code (see the gateway's list of measurements)")


def _quantity(value: Any, measurement: Measurement, where: str) -> dict[str, Any]:
    if not isinstance(value, dict) or set(value) - {"value", "unit", "system", "code"}:
        raise _fail(where, "must be a Quantity")
    number = value.get("value")
    if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
        raise _fail(f"{where}.value", "must be a number")
    if value.get("system") != UCUM_SYSTEM or value.get("code") != measurement.unit:
        raise _fail(where, f"must be in the UCUM unit {measurement.unit}")
    if not measurement.low <= number <= measurement.high:
        raise _fail(f"{where}.value", "outside what can be measured")
    return {
        "value": number,
        "unit": measurement.shown or measurement.unit,
        "system": UCUM_SYSTEM,
        "code": measurement.unit,
    }


def _coded(loinc: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": LOINC_SYSTEM, "code": loinc, "display": display}]}


def _components(value: Any) -> list[dict[str, Any]]:
    """The blood pressure panel's systolic and diastolic values, each once."""
    if not isinstance(value, list) or len(value) != 2:
        raise _fail("component", "a blood pressure has a systolic and a diastolic value")
    kept: dict[str, dict[str, Any]] = {}
    for index, item in enumerate(value):
        where = f"component[{index}]"
        if not isinstance(item, dict):
            raise _fail(where, "must be a component")
        _only(item, {"code", "valueQuantity"}, where)
        code = item.get("code")
        codings = code.get("coding") if isinstance(code, dict) else None
        loinc = next(
            (
                str(c.get("code"))
                for c in (codings if isinstance(codings, list) else ())
                if isinstance(c, dict)
                and c.get("system") == LOINC_SYSTEM
                and c.get("code") in BLOOD_PRESSURE_COMPONENTS
            ),
            None,
        )
        if loinc is None or loinc in kept:
            raise _fail(f"{where}.code", "must be the systolic or the diastolic pressure, once")
        measurement = BLOOD_PRESSURE_COMPONENTS[loinc]
        kept[loinc] = {
            "code": _coded(loinc, measurement.display),
            "valueQuantity": _quantity(
                item.get("valueQuantity"), measurement, f"{where}.valueQuantity"
            ),
        }
    return [kept[code] for code in BLOOD_PRESSURE_COMPONENTS]


def _category(value: Any) -> None:
    codings = [
        g
        for c in (value if isinstance(value, list) else ())
        if isinstance(c, dict) and isinstance(c.get("coding"), list)
        for g in c["coding"]
    ]
    ok = any(
        isinstance(g, dict)
        and g.get("system") == OBSERVATION_CATEGORY_SYSTEM
        and g.get("code") == VITAL_SIGNS_CATEGORY
        for g in codings
    )
    if not ok:
        raise _fail("category", "must be vital-signs")


def checked_observation(body: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """An own measurement, rebuilt from its accepted elements: status ``final``, the
    vital-signs category, a supported LOINC code, the subject (as sent: the caller checks
    it is the person), ``effectiveDateTime`` (not in the future), a value in the code's
    UCUM unit (a blood pressure: its two components), optionally a note and identifiers."""
    _only(
        body,
        {
            "resourceType",
            "id",
            "status",
            "category",
            "code",
            "subject",
            "effectiveDateTime",
            "valueQuantity",
            "component",
            "note",
            "identifier",
            "performer",
        },
        "Observation",
    )
    if body.get("status") != "final":
        raise _fail("status", "must be final")
    _category(body.get("category"))
    loinc = _loinc(body.get("code"), "code")
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [dict(VITAL_SIGNS_CODING)]}],
        "subject": {"reference": _reference(body.get("subject"), "subject")},
        "effectiveDateTime": _when(body.get("effectiveDateTime"), "effectiveDateTime", now),
    }
    if loinc == BLOOD_PRESSURE_PANEL:
        if "valueQuantity" in body:
            raise _fail("valueQuantity", "a blood pressure's values are its components")
        resource["code"] = _coded(loinc, BLOOD_PRESSURE_DISPLAY)
        resource["component"] = _components(body.get("component"))
    else:
        if "component" in body:
            raise _fail("component", "only a blood pressure has components")
        measurement = MEASUREMENTS[loinc]
        resource["code"] = _coded(loinc, measurement.display)
        resource["valueQuantity"] = _quantity(
            body.get("valueQuantity"), measurement, "valueQuantity"
        )
    if "note" in body:
        notes = body["note"]
        if not isinstance(notes, list) or len(notes) != 1 or not isinstance(notes[0], dict):
            raise _fail("note", "must be one note")
        _only(notes[0], {"text"}, "note[0]")
        resource["note"] = [{"text": _text(notes[0].get("text"), "note[0].text")}]
    if "identifier" in body:
        resource["identifier"] = _identifiers(body["identifier"])
    return resource


def _attachment(value: Any, where: str, max_bytes: int) -> dict[str, Any]:
    """A base64 JPEG or PNG image within ``max_bytes`` (413 over it)."""
    if not isinstance(value, dict):
        raise _fail(where, "must be an Attachment")
    _only(value, {"contentType", "data", "title"}, where)
    kind = value.get("contentType")
    if kind not in ATTACHMENT_SIGNATURES:
        raise _fail(f"{where}.contentType", "must be image/jpeg or image/png")
    data = value.get("data")
    if not isinstance(data, str) or not data:
        raise _fail(f"{where}.data", "must be base64 data")
    if len(data) > (max_bytes * 4) // 3 + 4:
        raise OwnInputError(f"{where}.data: larger than {max_bytes} bytes", status=413)
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _fail(f"{where}.data", "is not base64") from exc
    if len(raw) > max_bytes:
        raise OwnInputError(f"{where}.data: larger than {max_bytes} bytes", status=413)
    if not raw.startswith(ATTACHMENT_SIGNATURES[str(kind)]):
        raise _fail(f"{where}.data", f"is not a {kind} image")
    kept = {"contentType": kind, "data": data, "size": len(raw)}
    if "title" in value:
        kept["title"] = _text(value["title"], f"{where}.title", 200)
    return kept


def _answer(item: Mapping[str, Any], value: Any, where: str, max_bytes: int) -> dict[str, Any]:
    """One answer to ``item`` (of the Questionnaire), of the item's type."""
    if not isinstance(value, dict) or len(value) != 1:
        raise _fail(where, "must hold one value")
    kind = item["type"]
    if kind == "string" and "valueString" in value:
        limit = int(item.get("maxLength", MAX_TEXT))
        return {"valueString": _text(value["valueString"], f"{where}.valueString", limit)}
    if kind == "boolean" and isinstance(value.get("valueBoolean"), bool):
        return {"valueBoolean": value["valueBoolean"]}
    if kind == "date" and isinstance(value.get("valueDate"), str):
        text = value["valueDate"]
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            raise _fail(f"{where}.valueDate", "must be a date")
        try:
            normalise_datetime(text)
        except InvalidDateTime as exc:
            raise _fail(f"{where}.valueDate", "must be a date") from exc
        return {"valueDate": text}
    if kind == "choice" and isinstance(value.get("valueCoding"), dict):
        coding = value["valueCoding"]
        for option in item.get("answerOption", ()):
            allowed = option["valueCoding"]
            if coding.get("system") == allowed["system"] and coding.get("code") == allowed["code"]:
                return {"valueCoding": dict(allowed)}
        raise _fail(f"{where}.valueCoding", "not one of the item's options")
    if kind == "attachment" and "valueAttachment" in value:
        return {
            "valueAttachment": _attachment(
                value["valueAttachment"], f"{where}.valueAttachment", max_bytes
            )
        }
    raise _fail(where, f"must be an answer of type {kind}")


def _items(value: Any, questionnaire: Mapping[str, Any], max_bytes: int) -> list[dict[str, Any]]:
    asked = {str(i["linkId"]): i for i in questionnaire["item"]}
    if not isinstance(value, list) or not value or len(value) > len(asked):
        raise _fail("item", "must answer the questionnaire's items")
    kept: dict[str, dict[str, Any]] = {}
    for index, item in enumerate(value):
        where = f"item[{index}]"
        if not isinstance(item, dict):
            raise _fail(where, "must be an item")
        _only(item, {"linkId", "text", "answer"}, where)
        link = item.get("linkId")
        if not isinstance(link, str) or link not in asked or link in kept:
            raise _fail(f"{where}.linkId", "not an item of the questionnaire, or answered twice")
        answers = item.get("answer")
        if not isinstance(answers, list) or len(answers) != 1:
            raise _fail(f"{where}.answer", "must be one answer")
        kept[link] = {
            "linkId": link,
            "text": asked[link]["text"],
            "answer": [_answer(asked[link], answers[0], f"{where}.answer[0]", max_bytes)],
        }
    missing = [k for k, i in asked.items() if i.get("required") and k not in kept]
    if missing:
        raise _fail("item", f"the required item {missing[0]} is not answered")
    return [kept[k] for k in asked if k in kept]


def checked_response(
    body: Mapping[str, Any], now: datetime, max_attachment_bytes: int
) -> dict[str, Any]:
    """An answered form, rebuilt from its accepted elements: the served Questionnaire it
    answers, status ``completed``, the subject (checked by the caller), ``authored`` (not
    in the future; now when left out), one answer per item of the item's type."""
    _only(
        body,
        {
            "resourceType",
            "id",
            "questionnaire",
            "status",
            "subject",
            "authored",
            "item",
            "identifier",
            "author",
            "source",
        },
        "QuestionnaireResponse",
    )
    url = body.get("questionnaire")
    canonical = url.split("|")[0] if isinstance(url, str) else None
    questionnaire = QUESTIONNAIRES_BY_URL.get(canonical or "")
    if questionnaire is None:
        raise _fail("questionnaire", "not a Questionnaire the gateway serves")
    if body.get("status") != "completed":
        raise _fail("status", "must be completed")
    authored = body.get("authored")
    resource: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": f"{questionnaire['url']}|{questionnaire['version']}",
        "status": "completed",
        "subject": {"reference": _reference(body.get("subject"), "subject")},
        "authored": (
            _when(authored, "authored", now)
            if authored is not None
            else now.isoformat(timespec="seconds")
        ),
        "item": _items(body.get("item"), questionnaire, max_attachment_bytes),
    }
    if "identifier" in body:
        (resource["identifier"],) = _identifiers([body["identifier"]])
    return resource

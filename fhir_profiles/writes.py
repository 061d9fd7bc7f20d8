"""What the gateway writes to the systems that own the data: which types accept which
interactions, and the identifier a write carries to its owner so that a repeated
delivery creates nothing twice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from fhir_profiles.extensions import SAMLAD_EXTENSIONS

#: The identifier system of the id the gateway gives each write. A create is sent with
#: this identifier and ``If-None-Exist: identifier={system}|{id}``: delivered again after
#: a lost answer, the owner finds what it made the first time.
WRITE_ID_SYSTEM = "https://samlad.se/fhir/sid/write-id"

#: The resource types a client may write, and the interactions each accepts (routed to
#: the system that owns the data; the CapabilityStatement says the same).
WRITABLE: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "Appointment": ("create", "update"),
        "Task": ("create",),
        "Communication": ("create",),
    }
)

#: The SMART permission letter each interaction needs.
PERMISSION = MappingProxyType({"create": "c", "update": "u"})

#: The statuses a booking is made with.
BOOKABLE_STATUSES = frozenset({"proposed", "pending", "booked"})
#: The types a Task's ``focus`` may name: a prescription to renew, an order to fulfil.
TASK_FOCUS_TYPES = frozenset({"MedicationRequest", "ServiceRequest"})

#: The longest free text a write may carry (a comment, a note, a message).
TEXT_CAP = 4000

#: What a client may send in each write. Anything else is refused: the gateway builds
#: what it sends the owner from these alone (docs/api.md).
_BOOKING = frozenset({"resourceType", "status", "slot", "participant", "comment", "description"})
_TASK = frozenset({"resourceType", "status", "intent", "code", "for", "focus", "owner", "note"})
_MESSAGE = frozenset({"resourceType", "status", "subject", "recipient", "payload", "inResponseTo"})
_LITERAL = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$")


class WriteShapeError(ValueError):
    """A write that is not of the shape the gateway sends (its message names no one)."""


@dataclass(frozen=True, slots=True)
class Shaped:
    """A write as the gateway sends it, with the patient and what it concerns."""

    resource: dict[str, Any]
    patient_id: str
    #: ``Type/id`` (gateway id) of what the write concerns.
    concerns: str
    #: The care unit the client named (``Organization/id``), if any.
    unit_hint: str | None = None


def _only(body: Mapping[str, Any], allowed: frozenset[str]) -> None:
    extra = sorted(set(body) - allowed)
    if extra:
        raise WriteShapeError("this write may not contain: " + ", ".join(extra[:5]))


def literal(value: Any, what: str, kinds: frozenset[str] | set[str]) -> tuple[str, str]:
    """``Type``, ``id`` of a Reference that is only a literal ``Type/id`` of ``kinds``."""
    if isinstance(value, dict) and set(value) <= {"reference", "display", "type"}:
        reference = value.get("reference")
        match = _LITERAL.match(reference) if isinstance(reference, str) else None
        if match is not None and match.group(1) in kinds:
            return match.group(1), match.group(2)
    raise WriteShapeError(f"{what} must reference a {' or '.join(sorted(kinds))} by Type/id")


def _fixed(body: Mapping[str, Any], name: str, allowed: frozenset[str], default: str) -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or value not in allowed:
        raise WriteShapeError(f"{name} must be one of: {', '.join(sorted(allowed))}")
    return value


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > TEXT_CAP:
        raise WriteShapeError(f"{what} must be text of at most {TEXT_CAP} characters")
    return value


def _one(value: Any, what: str) -> Any:
    if not isinstance(value, list) or len(value) != 1:
        raise WriteShapeError(f"{what} must have exactly one element")
    return value[0]


def _notes(body: Mapping[str, Any]) -> dict[str, Any]:
    notes = body.get("note")
    if notes is None:
        return {}
    if not isinstance(notes, list) or len(notes) > 5:
        raise WriteShapeError("note must be a list of at most 5 notes")
    shaped = []
    for note in notes:
        if not isinstance(note, dict) or set(note) != {"text"}:
            raise WriteShapeError("a note has text only")
        shaped.append({"text": _text(note["text"], "a note")})
    return {"note": shaped}


def booking(body: Mapping[str, Any]) -> Shaped:
    """``POST Appointment``: a Slot booked for the one Patient participant."""
    _only(body, _BOOKING)
    status = _fixed(body, "status", BOOKABLE_STATUSES, "booked")
    _, slot = literal(_one(body.get("slot"), "slot"), "slot", {"Slot"})
    participant = _one(body.get("participant"), "participant (the Patient)")
    if not isinstance(participant, dict) or not set(participant) <= {"actor", "status"}:
        raise WriteShapeError("the participant is the Patient only")
    _, patient = literal(participant.get("actor"), "the participant", {"Patient"})
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "status": status,
        "slot": [{"reference": f"Slot/{slot}"}],
        "participant": [{"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"}],
    }
    for name in ("comment", "description"):
        if name in body:
            resource[name] = _text(body[name], name)
    return Shaped(resource, patient, f"Slot/{slot}")


def task(body: Mapping[str, Any]) -> Shaped:
    """``POST Task``: a prescription's renewal or an order asked for. Its ``owner`` (the
    unit the write goes to) and ``requester`` (the patient) are set when it is routed."""
    _only(body, _TASK)
    _, patient = literal(body.get("for"), "for", {"Patient"})
    kind, focus = literal(body.get("focus"), "focus", set(TASK_FOCUS_TYPES))
    resource: dict[str, Any] = {
        "resourceType": "Task",
        "status": _fixed(body, "status", frozenset({"requested"}), "requested"),
        "intent": _fixed(body, "intent", frozenset({"order"}), "order"),
        "for": {"reference": f"Patient/{patient}"},
        "focus": {"reference": f"{kind}/{focus}"},
        "requester": {"reference": f"Patient/{patient}"},
    }
    code = body.get("code")
    if code is not None:
        if not isinstance(code, dict) or set(code) != {"text"}:
            raise WriteShapeError("code has text only")
        resource["code"] = {"text": _text(code["text"], "code")}
    hint = None
    if body.get("owner") is not None:
        owner_kind, owner = literal(body["owner"], "owner", {"Organization"})
        hint = f"{owner_kind}/{owner}"
    return Shaped(resource | _notes(body), patient, f"{kind}/{focus}", hint)


def message(body: Mapping[str, Any]) -> Shaped:
    """``POST Communication``: a message from the patient to one care unit."""
    _only(body, _MESSAGE)
    _, patient = literal(body.get("subject"), "subject", {"Patient"})
    _, unit = literal(_one(body.get("recipient"), "recipient"), "recipient", {"Organization"})
    payload = body.get("payload")
    if not isinstance(payload, list) or not 1 <= len(payload) <= 5:
        raise WriteShapeError("a message has 1 to 5 payloads")
    texts = []
    for part in payload:
        if not isinstance(part, dict) or set(part) != {"contentString"}:
            raise WriteShapeError("a payload is contentString only")
        texts.append({"contentString": _text(part["contentString"], "contentString")})
    resource: dict[str, Any] = {
        "resourceType": "Communication",
        "status": _fixed(body, "status", frozenset({"completed"}), "completed"),
        "subject": {"reference": f"Patient/{patient}"},
        "sender": {"reference": f"Patient/{patient}"},
        "recipient": [{"reference": f"Organization/{unit}"}],
        "payload": texts,
    }
    answered = body.get("inResponseTo")
    if answered is not None:
        if not isinstance(answered, list) or len(answered) > 5:
            raise WriteShapeError("inResponseTo must be a list of at most 5 messages")
        resource["inResponseTo"] = [
            {"reference": "Communication/" + literal(a, "inResponseTo", {"Communication"})[1]}
            for a in answered
        ]
    return Shaped(resource, patient, f"Organization/{unit}")


#: The states (FHIR R4 AppointmentStatus) in which an Appointment may still be cancelled or
#: moved: not once it is cancelled, fulfilled, arrived, checked in, missed or in error.
CHANGEABLE_APPOINTMENT = frozenset({"proposed", "pending", "booked", "waitlist"})


def appointment_change(current: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
    """``PUT Appointment``: ``current`` (as its owner holds it) cancelled, or moved to the
    body's Slot, while it may still change; nothing else of the body is taken. A body that
    changes nothing (a repeated cancellation) is the Appointment as it is. What the
    gateway added to it (``meta``, its own extensions) is not sent back."""
    resource = {k: v for k, v in current.items() if k not in ("meta", "extension")}
    kept = [
        e
        for e in current.get("extension") or ()
        if not (isinstance(e, dict) and str(e.get("url", "")).startswith(SAMLAD_EXTENSIONS))
    ]
    if kept:
        resource["extension"] = kept
    status = body.get("status", current.get("status"))
    cancelled = status != current.get("status")
    if cancelled:
        if status != "cancelled":
            raise WriteShapeError("an Appointment's status may only be changed to cancelled")
        resource["status"] = "cancelled"
    if "slot" in body:
        _, slot = literal(_one(body.get("slot"), "slot"), "slot", {"Slot"})
        resource["slot"] = [{"reference": f"Slot/{slot}"}]
    moved = moved_to(current, resource) is not None
    if (cancelled or moved) and current.get("status") not in CHANGEABLE_APPOINTMENT:
        raise WriteShapeError(
            f"an Appointment that is {current.get('status', 'without a status')} cannot change"
        )
    if cancelled and moved:
        raise WriteShapeError("an Appointment is cancelled or moved, not both at once")
    return resource


def moved_to(current: Mapping[str, Any], changed: Mapping[str, Any]) -> str | None:
    """The Slot (gateway id) ``changed`` moves ``current`` to; None if not moved."""
    after = changed.get("slot")
    if after == current.get("slot") or not isinstance(after, list) or not after:
        return None
    return str(after[0]["reference"]).removeprefix("Slot/")

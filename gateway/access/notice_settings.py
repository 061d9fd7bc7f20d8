"""The person's notice settings, behind the same decision and log as their choices.

Only the person (or a guardian of a child under 13) reads and changes them, decided by
:func:`consent.policy.decide_self_service` as for consents (reading takes a scope that
reads ``Consent``, changing one that updates it), and every attempt is logged
(``notice-settings-read``, ``notice-settings-change``). The settings travel as a FHIR
``Parameters`` resource: ``kind`` (repeated ``valueCode``), ``email`` (``valueString``),
``webhook`` (``valueUrl``), ``quietStart`` and ``quietEnd`` (``valueTime``).
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, time
from typing import Any

from consent.policy import decide_self_service
from consent.principals import Citizen, Principal
from fhir_profiles.identifiers import PersonIdentifier
from gateway.access.callbacks import CallbackRule, callback_url
from gateway.access.notice_outbox import NoticeOutbox, Preferences
from gateway.access.reader import RecordReader, RecordServices
from gateway.collect.notices import KINDS
from gateway.errors import BadRequest, Forbidden, ServiceUnavailable

_EMAIL = re.compile(r"^[^@\s<>,;\"']{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$")
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)(:00)?$")
_VALUES = {
    "kind": "valueCode",
    "email": "valueString",
    "webhook": "valueUrl",
    "quietStart": "valueTime",
    "quietEnd": "valueTime",
}


def _time(value: str, name: str) -> time:
    found = _TIME.match(value)
    if found is None:
        raise BadRequest(f"{name} must be a time of day (hh:mm:ss)")
    return time(int(found.group(1)), int(found.group(2)))


def _values(body: Any) -> dict[str, list[str]]:
    """``{name: [value, ...]}`` of a Parameters body; any other shape is a 400 that
    names the element, never its value."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise BadRequest("the body must be a Parameters resource")
    parameters = body.get("parameter", [])
    if not isinstance(parameters, list) or len(parameters) > 20:
        raise BadRequest("Parameters.parameter must be a list of at most 20")
    values: dict[str, list[str]] = {}
    for index, parameter in enumerate(parameters):
        name = parameter.get("name") if isinstance(parameter, dict) else None
        value = parameter.get(_VALUES.get(str(name), "")) if isinstance(parameter, dict) else None
        if name not in _VALUES or not isinstance(value, str):
            raise BadRequest(f"Parameters.parameter[{index}] is not one this operation takes")
        values.setdefault(name, []).append(value.strip())
    if any(len(v) > 1 for n, v in values.items() if n != "kind"):
        raise BadRequest("a parameter other than kind is given more than once")
    return values


def parse_preferences(body: Any, *, email: bool) -> Preferences | None:
    """The settings a Parameters body asks for; None when it asks for no kind (opt out).
    ``email``: whether e-mail can be sent at all. Whether the webhook may be called is
    the caller's to check (:meth:`CallbackRule.check`)."""
    values = _values(body)
    kinds = tuple(k for k in KINDS if k in set(values.get("kind", [])))
    if len(kinds) != len(set(values.get("kind", []))):
        raise BadRequest(f"kind must be one of {', '.join(KINDS)}")
    if not kinds:
        return None
    address = values.get("email", [None])[0]
    if address is not None and (not email or len(address) > 254 or not _EMAIL.match(address)):
        raise BadRequest("email must be an e-mail address (and e-mail must be offered)")
    hook = values.get("webhook", [None])[0]
    if address is None and hook is None:
        raise BadRequest("an email or a webhook is needed to be told anything")
    start, end = values.get("quietStart", [None])[0], values.get("quietEnd", [None])[0]
    if (start is None) != (end is None):
        raise BadRequest("quietStart and quietEnd go together")
    return Preferences(
        kinds,
        address,
        None if hook is None else callback_url(hook, "webhook"),
        None if start is None else _time(start, "quietStart"),
        None if end is None else _time(end, "quietEnd"),
    )


def preferences_resource(preferences: Preferences | None) -> dict[str, Any]:
    """The settings as a Parameters resource (no parameter: told of nothing)."""
    parameters: list[dict[str, Any]] = []
    if preferences is not None:
        parameters += [{"name": "kind", "valueCode": k} for k in preferences.kinds]
        for name, value in (("email", preferences.email), ("webhook", preferences.webhook)):
            if value is not None:
                parameters.append({"name": name, _VALUES[name]: value})
        for name, moment in (
            ("quietStart", preferences.quiet_start),
            ("quietEnd", preferences.quiet_end),
        ):
            if moment is not None:
                parameters.append({"name": name, "valueTime": moment.strftime("%H:%M:%S")})
    return {"resourceType": "Parameters", "parameter": parameters}


class NoticeDesk:
    """One principal's reading and changing of one person's notice settings."""

    def __init__(
        self, principal: Principal, services: RecordServices, outbox: NoticeOutbox | None
    ) -> None:
        self._principal = principal
        self._services = services
        self._reader = RecordReader(principal, services)
        self._outbox = outbox

    async def _authorise(
        self, patient_id: str, permission: str, action: str
    ) -> tuple[NoticeOutbox, PersonIdentifier]:
        person = await self._reader.person(patient_id)
        facts = await self._reader.facts(person, patient_id)
        decision = decide_self_service(self._principal, facts, "Consent", permission)
        await self._reader.log(decision, patient_id, action, ["Consent"])
        if not decision.allowed:
            raise Forbidden(f"not permitted ({decision.reason})")
        if self._outbox is None:
            raise ServiceUnavailable("notices are not offered")
        return self._outbox, person

    async def read(self, patient_id: str) -> dict[str, Any]:
        outbox, _ = await self._authorise(patient_id, "r", "notice-settings-read")
        return preferences_resource(await outbox.preferences(patient_id))

    async def change(self, patient_id: str, body: Any, *, email: bool) -> dict[str, Any]:
        outbox, person = await self._authorise(patient_id, "u", "notice-settings-change")
        chosen = parse_preferences(body, email=email)
        if chosen is not None and chosen.webhook is not None:
            await CallbackRule.configured(self._services.settings).check(chosen.webhook, "webhook")
        if chosen is not None and isinstance(self._principal, Citizen):
            # A guardian's or a proxy's choice lasts as long as their standing does.
            setter = self._principal.person
            chosen = replace(chosen, setter=None if setter == person else setter.value)
        await outbox.choose(patient_id, chosen, datetime.now(UTC))
        return preferences_resource(chosen)

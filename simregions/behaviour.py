"""How a simulated region misbehaves: latency and faults, changeable while it runs.

A :class:`Behaviour` is read on every request, so a test or a benchmark can flip a running
region into a fault mode by assigning an attribute (same process) or with
``PUT /_sim/behaviour`` (another process). Faults apply to the FHIR routes only; the
``/_sim`` control routes always answer, so a region can be brought back.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FAULTS: tuple[str, ...] = (
    "none",
    "error-500",
    "unavailable-503",
    "rate-limit-429",
    "timeout",
    "malformed-json",
    "invalid-fhir",
    "reset",
    "next-loop",
    "slow-drip",
    "down",
)

#: Only requests under this path are subject to latency and faults.
FHIR_PATH_PREFIX = "/fhir"

#: How long ``timeout`` hangs: far beyond any client timeout, but the hang ends as soon as the
#: client goes away or the server shuts down.
TIMEOUT_HANG_SECONDS = 3600.0

#: ``slow-drip`` sends this many bytes ...
DRIP_CHUNK_BYTES = 4
#: ... every this many seconds (8 bytes/s: a per-read timeout never fires, a deadline does).
DRIP_INTERVAL_SECONDS = 0.5

_FIELDS = ("latency_ms", "fault", "fault_rate", "fault_paths", "seed")


class BehaviourError(ValueError):
    """A behaviour setting is not valid (the message lists what is)."""


def _check_fault(value: object) -> str:
    if not isinstance(value, str) or value not in FAULTS:
        raise BehaviourError(f"unknown fault {value!r}; valid faults: {', '.join(FAULTS)}")
    return value


def _check_number(name: str, value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BehaviourError(f"{name} must be a number")
    number = float(value)
    if not low <= number <= high:
        raise BehaviourError(f"{name} must be between {low:g} and {high:g}")
    return number


@dataclass
class Behaviour:
    """Latency and fault settings of one region, mutable at runtime.

    ``fault_rate`` is the probability that a request matching ``fault_paths`` gets the fault;
    the draw uses a random generator seeded with ``seed``, so a test that sends the same
    requests in the same order sees the same faults. ``fault_paths`` is a comma-separated list
    of substrings of the request path (e.g. ``"Observation"``); empty means every FHIR route.
    """

    latency_ms: float = 0.0
    fault: str = "none"
    fault_rate: float = 1.0
    fault_paths: str = ""
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False, compare=False)

    def __setattr__(self, name: str, value: Any) -> None:
        # Validate on every assignment, not only in __init__: tests and the control route
        # change a live Behaviour, and a typo must fail there, not silently mean "none".
        if name == "fault":
            value = _check_fault(value)
        elif name == "latency_ms":
            value = _check_number(name, value, 0.0, 600_000.0)
        elif name == "fault_rate":
            value = _check_number(name, value, 0.0, 1.0)
        elif name == "fault_paths" and not isinstance(value, str):
            raise BehaviourError("fault_paths must be a string")
        elif name == "seed":
            if isinstance(value, bool) or not isinstance(value, int):
                raise BehaviourError("seed must be an integer")
            object.__setattr__(self, "_rng", random.Random(value))
        object.__setattr__(self, name, value)

    def applies_to(self, path: str) -> bool:
        """Whether latency and faults apply to a request for ``path`` at all."""
        if not path.startswith(FHIR_PATH_PREFIX):
            return False
        filters = [part.strip() for part in self.fault_paths.split(",") if part.strip()]
        return not filters or any(part in path for part in filters)

    def draw_fault(self, path: str) -> str:
        """Return the fault this request gets (``"none"`` when it is served normally)."""
        fault = self.fault
        if fault == "none" or not self.applies_to(path):
            return "none"
        if self.fault_rate >= 1.0 or self._rng.random() < self.fault_rate:
            return fault
        return "none"

    def as_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready values."""
        return {name: getattr(self, name) for name in _FIELDS}

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply ``changes`` (a subset of the settings), all or nothing."""
        unknown = sorted(set(changes) - set(_FIELDS))
        if unknown:
            raise BehaviourError(
                f"unknown setting(s) {', '.join(unknown)}; valid settings: {', '.join(_FIELDS)}"
            )
        # Validate on a scratch copy first so a bad value leaves the live one untouched.
        scratch = Behaviour(**self.as_dict())
        for name, value in changes.items():
            setattr(scratch, name, value)
        for name in _FIELDS:
            if name in changes:
                setattr(self, name, getattr(scratch, name))

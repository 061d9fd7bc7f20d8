"""The relations register: who is the custodial parent (vårdnadshavare) of which child,
and who is the legal representative (god man, förvaltare) of which adult.

Loaded from the configured registers (JSON files or HTTP endpoints in the form the
simulated regions serve at ``/_sim/relations``) and refreshed after ``max_age``. If a
register cannot be read, questions about relations cannot be answered: callers fail
closed. A guardian relation is ``{"relationship": "guardian", "guardian": {...}, "child":
{...}}``; a legal representative's is ``{"relationship": "legal-representative",
"representative": {...}, "represented": {...}}``, each side with its ``personnummer``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

from fhir_profiles.identifiers import (
    InvalidPersonIdentifier,
    PersonIdentifier,
    parse_person_identifier,
)

log = logging.getLogger(__name__)


class RegisterConfig(BaseModel):
    """One source of guardian relations: a JSON file or an HTTP endpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: Path | None = None
    url: str | None = None
    token: SecretStr | None = None

    @model_validator(mode="after")
    def _one_source(self) -> RegisterConfig:
        if (self.file is None) == (self.url is None):
            raise ValueError("a guardian register needs exactly one of file or url")
        return self


class RegisterUnavailable(Exception):
    """The register could not be read; guardian access must be refused."""


#: Each relationship the register knows, and the keys of its two sides: the one who acts,
#: and the one acted for.
RELATIONSHIPS = {
    "guardian": ("guardian", "child"),
    "legal-representative": ("representative", "represented"),
}

#: A relation as held: (relationship, who acts, for whom), by canonical numbers.
Relation = tuple[str, str, str]


def _pairs(document: Any) -> set[Relation]:
    pairs: set[Relation] = set()
    relations = document.get("relations", []) if isinstance(document, dict) else []
    for relation in relations if isinstance(relations, list) else []:
        if not isinstance(relation, dict) or relation.get("relationship") not in RELATIONSHIPS:
            continue
        kind = str(relation["relationship"])
        acting, acted_for = RELATIONSHIPS[kind]
        try:
            actor = parse_person_identifier(str(relation[acting]["personnummer"]))
            person = parse_person_identifier(str(relation[acted_for]["personnummer"]))
        except (KeyError, TypeError, InvalidPersonIdentifier):
            continue  # a malformed row grants nothing
        pairs.add((kind, actor.value, person.value))
    return pairs


class GuardianRegister:
    """Answers "is G the guardian of C" and "is R the legal representative of P", from
    every configured register."""

    def __init__(
        self,
        registers: Sequence[RegisterConfig],
        client: httpx.AsyncClient,
        *,
        max_age: float = 600.0,
    ) -> None:
        self._registers = tuple(registers)
        self._client = client
        self._max_age = max_age
        self._pairs: set[Relation] | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    async def _load_one(self, register: RegisterConfig) -> set[Relation]:
        if register.file is not None:
            return _pairs(orjson.loads(register.file.read_bytes()))
        assert register.url is not None
        headers = {}
        if register.token is not None:
            headers["Authorization"] = f"Bearer {register.token.get_secret_value()}"
        response = await self._client.get(register.url, headers=headers, timeout=5.0)
        response.raise_for_status()
        return _pairs(orjson.loads(response.content))

    async def _current(self) -> set[Relation]:
        if self._pairs is not None and time.monotonic() - self._loaded_at < self._max_age:
            return self._pairs
        async with self._lock:
            if self._pairs is not None and time.monotonic() - self._loaded_at < self._max_age:
                return self._pairs
            try:
                loaded: set[Relation] = set()
                for register in self._registers:
                    loaded |= await self._load_one(register)
            except (OSError, ValueError, httpx.HTTPError) as exc:
                log.warning("guardian register unavailable: %s", type(exc).__name__)
                raise RegisterUnavailable("the guardian register is unavailable") from exc
            self._pairs, self._loaded_at = loaded, time.monotonic()
            return loaded

    async def is_guardian_of(self, guardian: PersonIdentifier, child: PersonIdentifier) -> bool:
        """True if the register names ``guardian`` as ``child``'s guardian (until which age
        a guardian may act is the policy's rule: :class:`consent.policy.CitizenAges`)."""
        if not self._registers:
            return False
        return ("guardian", guardian.value, child.value) in await self._current()

    async def is_representative_of(
        self, representative: PersonIdentifier, person: PersonIdentifier
    ) -> bool:
        """True if the register names ``representative`` as ``person``'s legal
        representative (god man, förvaltare)."""
        if not self._registers:
            return False
        relation = ("legal-representative", representative.value, person.value)
        return relation in await self._current()

    async def represented_by(self, representative: PersonIdentifier) -> list[PersonIdentifier]:
        """Everyone the register names ``representative`` the legal representative of."""
        if not self._registers:
            return []
        return [
            PersonIdentifier(person)
            for kind, actor, person in sorted(await self._current())
            if kind == "legal-representative" and actor == representative.value
        ]

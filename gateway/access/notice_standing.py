"""What the one who chose a person's notices may be told now, decided by the one access
decision (:func:`consent.policy.decide`) as they would be when reading online.

Notices go to whoever chose them: the person, or a guardian or a proxy acting for them
(:attr:`Preferences.setter`). Each is decided when the worker turns notices into messages
and again before a message is sent: one whose standing has ended (the child turned 13,
the proxy's grant expired or was withdrawn) is told nothing more. News counts only the
entries they could read online at that moment: each is read as them through the
:class:`~gateway.access.reader.RecordReader` (logged as ``notice-news``, which nobody is
told of), so an entry not approved for the patient, held back by the delayed release,
under a seal or excluded by the region, hidden as from any read, is not news to them.
"""

from __future__ import annotations

from collections.abc import Sequence

from consent.policy import decide
from consent.principals import Citizen
from fhir_profiles.identifiers import PersonIdentifier, parse_person_identifier
from gateway.access.notice_outbox import Preferences
from gateway.access.reader import RecordReader, RecordServices
from gateway.errors import Forbidden, NotFound

#: What the one told may read when reading online (the scopes the web app asks for are
#: the token's business; here it is what the person's standing allows).
READ_ONLINE = frozenset({"patient/*.rs"})
#: How the reads that decide news are logged (``notice-``: nobody is told of them).
NEWS_ACTION = "notice-news"


class NoticeStanding:
    """Decides, as the one who chose a person's notices, what they may still be told."""

    def __init__(self, services: RecordServices) -> None:
        self._services = services

    async def _told(
        self, patient_id: str, preferences: Preferences
    ) -> tuple[Citizen, PersonIdentifier] | None:
        """The one told, as a citizen reading online, and the person; None if either
        is unknown."""
        person = await self._services.persons.resolve(patient_id)
        if person is None:
            return None
        told = person
        if preferences.setter is not None:
            try:
                told = parse_person_identifier(preferences.setter)
            except ValueError:
                return None  # a setter that no longer opens is nobody
        return Citizen(told, READ_ONLINE), person

    async def stands(self, patient_id: str, preferences: Preferences) -> bool:
        """Whether the one who chose ``preferences`` may read the person's record now."""
        found = await self._told(patient_id, preferences)
        if found is None:
            return False
        principal, person = found
        facts = await RecordReader(principal, self._services).facts(person, patient_id)
        return decide(principal, facts).allowed

    async def any_shown(
        self, patient_id: str, preferences: Preferences, refs: Sequence[str]
    ) -> bool:
        """Whether any of the news ``refs`` (``Type/id``) is one the one told could read
        online now. A read that fails for want of a source raises (tried again later)."""
        found = await self._told(patient_id, preferences)
        if found is None:
            return False
        reader = RecordReader(found[0], self._services)
        for ref in refs:
            resource_type, _, resource_id = ref.partition("/")
            try:
                await reader.read(resource_type, resource_id, action=NEWS_ACTION)
            except (Forbidden, NotFound):
                continue
            return True
        return False

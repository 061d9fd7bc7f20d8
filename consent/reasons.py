"""The one rule for a stated reason: the free text of an emergency access (nödåtkomst).

A clinician's reason is kept twice, in the emergency-access record and in its access log
entry, and both keep the same text: :func:`stated_reason`'s. It is made printable
(invisible characters removed, white space made single spaces), must then hold at least
:data:`MIN_REASON` characters, and has every identity number in it replaced by
:data:`REDACTED`; what is left must fit :data:`MAX_REASON` characters. Applying the rule
to its own result changes nothing, so each store may apply it again.
"""

from __future__ import annotations

import re
import unicodedata

from store.tables import MAX_REASON  # the most characters a kept reason has (the column's)

MIN_REASON = 3
#: What an identity number in a reason is replaced by.
REDACTED = "[identitetsnummer borttaget]"

#: 10 or 12 digits, optionally with - or + before the last four: a personnummer or
#: samordningsnummer in free text, whether valid or not.
IDENTITY_NUMBER_IN_TEXT = re.compile(r"(?<!\d)(?:\d{2})?\d{6}[-+]?\d{4}(?!\d)")

# Unicode categories that show nothing: controls, format characters (zero-width spaces
# and joiners, the BOM, direction marks, soft hyphens), surrogates, private use, unassigned.
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


class InvalidReason(ValueError):
    """A reason that is blank once made printable, or too long. The message never
    repeats the reason (it may name a person)."""


def redact_identity_numbers(text: str) -> str:
    """``text`` with every identity number replaced by :data:`REDACTED`."""
    return IDENTITY_NUMBER_IN_TEXT.sub(REDACTED, text)


def stated_reason(text: str) -> str:
    """The reason as it is kept: printable, non-blank, redacted and bounded.

    Raises :class:`InvalidReason` for one with fewer than :data:`MIN_REASON` visible
    characters, or more than :data:`MAX_REASON` once redacted.
    """
    kept: list[str] = []
    for char in unicodedata.normalize("NFC", text):
        if char.isspace():
            kept.append(" ")  # line breaks, tabs and every other space
        elif unicodedata.category(char) not in _INVISIBLE:
            kept.append(char)
    printable = " ".join("".join(kept).split())
    if len(printable) < MIN_REASON:
        raise InvalidReason(f"a reason needs at least {MIN_REASON} visible characters")
    redacted = redact_identity_numbers(printable)
    if len(redacted) > MAX_REASON:
        raise InvalidReason(f"a reason may have at most {MAX_REASON} characters")
    return redacted

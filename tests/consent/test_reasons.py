"""The one rule for a stated reason, as the emergency-access record and its log entry keep it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from consent.reasons import MAX_REASON, REDACTED, InvalidReason, stated_reason
from tests.consent.helpers import entry

BLANK = [
    "",
    "\x00\x00\x00\x00",
    "\u200b\u200b\u200b\u200b",  # zero-width spaces
    "\ufeff\u200c\u200d\u2060",  # BOM, zero-width non-joiner and joiner, word joiner
    "\u202e\u00ad\x7f\x1b",  # a direction override, a soft hyphen, DEL, ESC
    " \t\r\n\u00a0\u2028\u3000 ",
    "a\u200b\u200bb",  # two visible characters only
    "\ue000\ue001\ue002",  # private use
]


@pytest.mark.parametrize("text", BLANK)
def test_a_reason_with_too_few_visible_characters_is_refused(text: str) -> None:
    with pytest.raises(InvalidReason) as refused:
        stated_reason(text)
    assert text not in str(refused.value) or not text


@pytest.mark.parametrize("text", BLANK[1:])
def test_the_log_refuses_the_same_reasons(text: str) -> None:
    with pytest.raises(ValidationError):
        entry(emergency=True, purpose="ETREAT", emergency_reason=text)


def test_a_reason_is_made_printable_and_single_spaced() -> None:
    assert stated_reason("  Akut\x00 med\u200bvets\u00adlös\r\n\tpatient\u00a0 ") == (
        "Akut medvetslös patient"
    )
    assert stated_reason("Hja\u0308rtstopp") == "Hjärtstopp"  # one form of each letter


@pytest.mark.parametrize(
    "number", ["191212121212", "19121212-1212", "121212-1212", "1212121212", "121212+1212"]
)
def test_identity_numbers_are_redacted(number: str) -> None:
    kept = stated_reason(f"Medvetslös ({number}), enligt anhörig")
    assert kept == f"Medvetslös ({REDACTED}), enligt anhörig"
    assert stated_reason(f"{number}") == REDACTED


def test_the_rule_keeps_its_own_result() -> None:
    for text in ("Hjärtstopp 19121212-1212\x00 \u200b igen", "abc", "x" * MAX_REASON):
        kept = stated_reason(text)
        assert stated_reason(kept) == kept


def test_a_reason_is_bounded_once_redacted() -> None:
    assert stated_reason("x" * MAX_REASON) == "x" * MAX_REASON
    with pytest.raises(InvalidReason):
        stated_reason("x" * (MAX_REASON + 1))
    # Invisible characters do not count; the redaction, longer than the number, does.
    assert stated_reason("\u200b" * 50 + "x" * MAX_REASON) == "x" * MAX_REASON
    with pytest.raises(InvalidReason):
        stated_reason("x" * (MAX_REASON - 12) + " 191212121212")


def test_the_log_keeps_the_reason_by_the_same_rule() -> None:
    text = "Medvetslös\x00 19121212-1212\u200b"
    made = entry(emergency=True, purpose="ETREAT", emergency_reason=text)
    assert made.emergency_reason == stated_reason(text) == f"Medvetslös {REDACTED}"

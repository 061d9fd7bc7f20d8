"""The whole International Patient Summary document, pinned byte for byte.

Each case builds a summary from a record in ``tests/ips/golden/`` and compares it, as
indented JSON text (so key order counts too), with the ``.summary.json`` file next to it:

- ``test-person``: part of the test person's real record as ``$everything`` returns it
  from the three simulated regions (every kind of resource, a spread of analyses,
  prescriptions, diagnoses and encounters), with the ``fetched-at`` instants fixed;
- ``edge-cases``: a hand-made record that walks the selection and rewriting rules
  (duplicates, missing times and codes, refuted facts, gateway extensions, references
  in and out of the document, hostile strings, a restricted Patient without birth date);
- ``empty``: a Patient with nothing else.

The files were written by the summary code as it stood when they were added. A deliberate
change of the document updates them in the same commit:
``python -m tests.gateway.test_summary_golden`` rewrites every ``.summary.json``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.answer.summary import build_summary
from tests.gateway.conftest import FHIR_BASE

GOLDEN = Path(__file__).resolve().parents[1] / "ips" / "golden"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

#: Case name -> (record file stem, keyword arguments of ``build_summary``).
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "test-person": ("test-person", {}),
    "test-person-options": (
        "test-person",
        {
            "base_url": FHIR_BASE + "/",
            "now": datetime.fromisoformat("2026-11-22T13:00:00.5+01:00"),
            "author": "Samlad <test> & co",
            "results_per_analysis": 3,
            "max_encounters": 4,
            "incomplete_sources": ("Region Syd", "Region <Väst>"),
        },
    ),
    "edge-cases": ("edge-cases", {}),
    "edge-cases-narrow": ("edge-cases", {"results_per_analysis": 2, "max_encounters": 0}),
    "empty": ("empty", {}),
}


def _summary_text(case: str) -> str:
    stem, options = CASES[case]
    record = json.loads((GOLDEN / f"{stem}.record.json").read_text(encoding="utf-8"))
    arguments: dict[str, Any] = {"base_url": FHIR_BASE, "now": NOW, **options}
    bundle = build_summary(record["patient"], record["resources"], **arguments)
    return json.dumps(bundle, indent=1, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("case", sorted(CASES))
def test_summary_is_unchanged(case: str) -> None:
    expected = (GOLDEN / f"{case}.summary.json").read_text(encoding="utf-8")
    assert _summary_text(case) == expected


if __name__ == "__main__":
    for name in CASES:
        (GOLDEN / f"{name}.summary.json").write_text(_summary_text(name), encoding="utf-8")

"""The code's shape (docs/architecture.md): short functions, modules of one job, and a map
that names every module of the gateway. The import rules (layers, no circles) are
checked by import-linter in ``make lint``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ["gateway", "adapters", "consent", "store", "fhir_profiles", "simregions"]
MAX_FUNCTION_LINES = 100
MAX_MODULE_LINES = 500


def _modules() -> list[Path]:
    return sorted(p for package in PRODUCT for p in (ROOT / package).rglob("*.py"))


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", _modules(), ids=_name)
def test_no_module_is_longer_than_500_lines(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{_name(path)} has {lines} lines: split it by job"


def test_no_function_is_longer_than_100_lines() -> None:
    long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{_name(path)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


def test_the_architecture_names_every_module_of_the_gateway() -> None:
    """A newcomer finds each step from docs/architecture.md: every module of gateway/ is
    in its map, by its path, by its file name in its room's row, or by its package."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    missing = []
    for path in (ROOT / "gateway").rglob("*.py"):
        relative = path.relative_to(ROOT)
        if path.name == "__init__.py" or "migrations" in relative.parts:
            continue
        named = (
            f"`{relative}`" in text
            or f"`{relative.parent}/`" in text
            or (f"`{relative.parent}/" in text and f"`{path.name}`" in text)
        )
        if not named:
            missing.append(str(relative))
    assert not missing, missing

"""The code's shape (docs/architecture.md): short functions, modules of one job, and a map
that names every module of the gateway. The import rules (layers, no circles) are
checked by import-linter in ``make lint``."""

from __future__ import annotations

import ast
import re
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


def test_the_docs_name_only_files_and_tests_that_exist() -> None:
    """Paths in docs/ and README.md, and the tests docs/consent.md gives as proof of each
    rule, exist: a moved module or a renamed test is renamed in the docs too."""
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    text = "\n".join(path.read_text() for path in docs)
    paths = set(
        re.findall(
            r"\b((?:tests|gateway|consent|adapters|store|fhir_profiles|"
            r"simregions|bench|scripts)/[\w/.-]+\.(?:py|md|json|toml))",
            text,
        )
    )
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("*.py"))
    defined = set(re.findall(r"def (test_\w+)", tests))
    proofs = set(re.findall(r"\b(test_\w+)\b", (ROOT / "docs" / "consent.md").read_text()))
    modules = {p.stem for p in (ROOT / "tests").rglob("test_*.py")}
    missing += sorted(n for n in proofs - defined - modules)
    assert not missing, missing

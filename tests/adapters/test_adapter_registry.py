"""The adapter registry: kinds by name, start-up checks, dialect validation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from adapters.base import SourceAdapter
from adapters.config import SourceConfig, SourceConfigError, parse_sources
from adapters.fhir_r4 import FhirR4Adapter, parse_dialect
from adapters.legacy_xml import LegacyXmlAdapter
from adapters.registry import (
    ADAPTER_KINDS,
    UnknownAdapterKind,
    adapter_class,
    build_adapter,
    check_kinds,
)
from tests.adapters.adapter_fakes import make_config

pytestmark = pytest.mark.anyio


def test_every_kind_is_registered() -> None:
    assert adapter_class("fhir-r4") is FhirR4Adapter
    assert adapter_class("legacy-xml") is LegacyXmlAdapter
    assert sorted(ADAPTER_KINDS) == ["fhir-r4", "legacy-xml"]


def test_unknown_kind_names_the_valid_kinds() -> None:
    config = make_config().model_copy(update={"kind": "hl7v2"})
    with pytest.raises(UnknownAdapterKind) as caught:
        check_kinds([make_config(), config])
    message = str(caught.value)
    assert "'hl7v2'" in message
    assert "valid kinds: fhir-r4" in message
    assert isinstance(caught.value, SourceConfigError)


async def test_build_adapter_wraps_the_given_client() -> None:
    async with httpx.AsyncClient() as client:
        adapter = build_adapter(make_config(), client)
        assert isinstance(adapter, FhirR4Adapter)
        assert isinstance(adapter, SourceAdapter)
        assert adapter.source_id == "region-test"
        with pytest.raises(UnknownAdapterKind):
            build_adapter(make_config().model_copy(update={"kind": "nope"}), client)


@pytest.mark.parametrize(
    ("dialect", "problem"),
    [
        ({"page_sise": 10}, "page_sise: Extra inputs are not permitted"),
        ({"page_size": 0}, "page_size"),
        ({"page_cap": "many"}, "page_cap"),
        ({"identifier_format": "yyyymmdd"}, "identifier_format"),
        ({"identifier_formats": ["canonical", "yymmdd"]}, "identifier_formats"),
        ({"identifier_formats": []}, "identifier_formats"),
        ({"identifier_systems": [""]}, "identifier_systems"),
        ({"patient_search": "put"}, "patient_search"),
        ({"max_response_bytes": 10}, "max_response_bytes"),
    ],
)
def test_invalid_dialect_fails_at_start_up(dialect: dict[str, Any], problem: str) -> None:
    config = make_config(**dialect)
    with pytest.raises(SourceConfigError, match=problem):
        check_kinds([config])


def test_dialect_defaults() -> None:
    dialect = parse_dialect(make_config())
    assert dialect.page_size == 50
    assert dialect.page_cap == 100
    assert dialect.identifier_system is None
    assert dialect.identifier_format is None
    assert dialect.identifier_systems is None
    assert dialect.forms == ("canonical", "yyyymmdd-nnnn", "yymmdd-nnnn", "yymmddnnnn")
    assert dialect.patient_search == "post"
    assert dialect.max_response_bytes == 20 * 1024 * 1024


def test_sources_file_example_passes_the_start_up_check() -> None:
    sources: list[SourceConfig] = parse_sources(
        {
            "sources": [
                {
                    "id": "region-nord",
                    "kind": "fhir-r4",
                    "base_url": "http://127.0.0.1:8101/fhir",
                    "auth": {"type": "bearer", "token": "sim-nord-token"},
                    "dialect": {"page_size": 10, "identifier_format": "yymmdd-nnnn"},
                }
            ]
        }
    )
    check_kinds(sources)

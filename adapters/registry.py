"""Adapter kinds by name: the sources file says ``kind = "..."``, this module builds it.

A new dialect plugs in with one line in :data:`ADAPTER_KINDS`, e.g.
``"legacy-xml": "adapters.legacy_xml:LegacyXmlAdapter",`` — any class whose constructor
takes ``(config, client)`` and that has a ``check_config`` classmethod. A kind's module is
imported only where a source of that kind is configured.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Protocol, cast

import httpx

from adapters.auth import bearer_auth, smart_backend_auth
from adapters.base import SourceAdapter
from adapters.config import BearerAuth, NoAuth, SmartBackendAuth, SourceConfig, SourceConfigError


class AdapterFactory(Protocol):
    """What a registered kind provides: a constructor and a start-up config check."""

    def __call__(self, config: SourceConfig, client: httpx.AsyncClient) -> SourceAdapter: ...

    def check_config(self, config: SourceConfig) -> None: ...


#: Each kind's adapter, as ``module:class``. Imported when first used: a process without
#: a legacy source never loads the XML adapter and its parsers (about 1.1 MB).
ADAPTER_KINDS: Mapping[str, str] = MappingProxyType(
    {
        "fhir-r4": "adapters.fhir_r4:FhirR4Adapter",
        "legacy-xml": "adapters.legacy_xml:LegacyXmlAdapter",
    }
)


class UnknownAdapterKind(SourceConfigError):
    """A source names a kind no adapter is registered for."""

    def __init__(self, source_id: str, kind: str) -> None:
        valid = ", ".join(sorted(ADAPTER_KINDS))
        super().__init__(f"source {source_id!r}: unknown kind {kind!r}; valid kinds: {valid}")
        self.kind = kind


def adapter_class(kind: str) -> AdapterFactory:
    """The adapter registered for ``kind`` (KeyError if none)."""
    module, name = ADAPTER_KINDS[kind].split(":")
    return cast(AdapterFactory, getattr(importlib.import_module(module), name))


def _factory(config: SourceConfig) -> AdapterFactory:
    try:
        return adapter_class(config.kind)
    except KeyError:
        raise UnknownAdapterKind(config.id, config.kind) from None


def check_kinds(configs: Iterable[SourceConfig]) -> None:
    """Fail at start-up, before any client exists, on an unknown kind or invalid dialect."""
    for config in configs:
        _factory(config).check_config(config)


def build_adapter(config: SourceConfig, client: httpx.AsyncClient) -> SourceAdapter:
    """Build the adapter for ``config.kind`` around the caller's client."""
    return _factory(config)(config, client)


def build_auth(config: SourceConfig) -> httpx.Auth:
    """Build the ``httpx.Auth`` for a source; give it to the client that source uses.

    Key files are read here, so a missing or unusable key fails at start-up.
    """
    auth = config.auth
    if isinstance(auth, SmartBackendAuth):
        return smart_backend_auth(auth)
    if isinstance(auth, BearerAuth):
        return bearer_auth(auth)
    if isinstance(auth, NoAuth):
        return httpx.Auth()  # the base class sends requests unchanged
    raise SourceConfigError(f"source {config.id!r}: unsupported auth type")  # pragma: no cover

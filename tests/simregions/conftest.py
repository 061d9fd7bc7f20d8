"""Simulated regions served on loopback for the simregions tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import pytest

from simregions.app import create_app
from simregions.behaviour import Behaviour
from simregions.data import build_region_data
from simregions.people import TEST_PERSON_PNR
from simregions.regions import DEFAULT_REGIONS, RegionSpec
from simregions.server import RunningServer, serve_in_thread
from simregions.store import region_store


@dataclass
class Served:
    """One region running on a loopback port, with the Behaviour it reads."""

    spec: RegionSpec
    behaviour: Behaviour
    server: RunningServer

    @property
    def fhir(self) -> str:
        return f"{self.server.url}/fhir"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.spec.token}"}

    @property
    def test_patient_id(self) -> str:
        """The region's local Patient id of the test person (read from its data, not HTTP)."""
        patient_id = build_region_data(self.spec).patient_id(TEST_PERSON_PNR)
        assert patient_id is not None
        return patient_id


@pytest.fixture(scope="module")
def regions() -> Iterator[dict[str, Served]]:
    """The three default regions, healthy, for tests that only read (never change behaviour)."""
    with ExitStack() as stack:
        served: dict[str, Served] = {}
        for spec in DEFAULT_REGIONS:
            behaviour = Behaviour()
            server = stack.enter_context(serve_in_thread(create_app(spec, behaviour)))
            served[spec.id] = Served(spec, behaviour, server)
        yield served


@pytest.fixture
def faulty() -> Iterator[Served]:
    """A fresh Region Nord with its own Behaviour, for one test to misconfigure at will."""
    spec = DEFAULT_REGIONS[0]
    region_store(spec)  # build outside the server thread so start-up stays fast
    behaviour = Behaviour()
    with serve_in_thread(create_app(spec, behaviour)) as server:
        yield Served(spec, behaviour, server)

"""SQL statements per warm read, by who reads and what the person has chosen.

A count does not depend on the machine's load, so it shows what a warm read asks of the
database where timings (``bench_warm``) cannot: each statement is a round trip and work on
both sides. The gateway runs in this process (its app, driven through httpx's ASGI
transport) on a PostgreSQL database created for the run, with the three simulated FHIR
regions as its sources; every statement its engine sends is counted
(``before_cursor_execute``). Each case reads the test person's 50-entry Observation page
``--reads`` times, warm (a few reads made first), and prints the statements per read and
which they were:

* a clinician of Region Nord, with the person's consent (as ``bench_warm`` reads);
* the person themselves;
* the person, after recording their weight (their own source is read);
* the clinician, after the person asked to be told of reads by e-mail (the notice is
  written with the log entry).

    .venv/bin/python -m bench.bench_statements [--reads 50]

Needs PostgreSQL on 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import event
from sqlalchemy.engine import Engine

from bench.harness import (
    CLINICIAN_CARE_PROVIDER,
    POSTGRES_ADMIN_URL,
    TEST_PERSON,
    Issuer,
    consent_body,
    free_port,
    fresh_postgres,
    region_sources,
    start_regions,
    write_gateway_config,
)
from consent.scopes import CITIZEN_SCOPE
from fhir_profiles.identifiers import PERSONNUMMER_SYSTEM
from gateway.run.cli import LOG_LEVEL_VARIABLE
from gateway.run.configfile import CONFIG_FILE_VARIABLE

PAGE_SIZE = 50
LOINC, UCUM = "http://loinc.org", "http://unitsofmeasure.org"


class Statements:
    """Every statement any engine of this process sends, by its first words."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        event.listen(Engine, "before_cursor_execute", self._count)

    def _count(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.seen[" ".join(statement.split())[:100]] += 1

    def report(self, label: str, reads: int) -> None:
        total = sum(self.seen.values())
        print(f"\n{label}: {total / reads:.2f} statements per read")
        for statement, count in self.seen.most_common():
            if count >= reads / 2:  # what every read makes (not background work)
                print(f"  {count / reads:5.2f}  {statement}")
        self.seen.clear()


def body_weight(patient_id: str) -> dict[str, Any]:
    """A weighing the person records of themselves."""
    vital = "http://terminology.hl7.org/CodeSystem/observation-category"
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": vital, "code": "vital-signs"}]}],
        "code": {"coding": [{"system": LOINC, "code": "29463-7"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": "2026-01-05T07:45:00+01:00",
        "valueQuantity": {"value": 81.0, "unit": "kg", "system": UCUM, "code": "kg"},
    }


async def read_pages(
    client: httpx.AsyncClient, url: str, headers: Mapping[str, str], reads: int
) -> None:
    for _ in range(reads):
        response = await client.get(url, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code}: {response.text[:300]}")


async def run(args: argparse.Namespace) -> None:
    statements = Statements()
    with (
        tempfile.TemporaryDirectory(prefix="samlad-bench-") as tmp,
        fresh_postgres(args.postgres) as database_url,
    ):
        folder = Path(tmp)
        regions = start_regions(folder)
        try:
            issuer = Issuer.create(folder)
            config = write_gateway_config(
                folder / "gateway",
                free_port(),
                issuer,
                region_sources(regions, 60.0),
                database_url=database_url,
                auto_migrate=False,
                request_deadline=60.0,
                # A mail server is named so that an address can be chosen; nothing is
                # sent while the run lasts (notices wait a batch window first).
                notices={"smtp_host": "127.0.0.1", "smtp_port": free_port()},
            )
            os.environ[CONFIG_FILE_VARIABLE] = str(config)
            os.environ.setdefault(LOG_LEVEL_VARIABLE, "WARNING")
            from gateway.run.cli import app_from_environment

            app = app_from_environment()
            async with app.router.lifespan_context(app):
                await measure(app, issuer, statements, args.reads)
        finally:
            for region in regions:
                region.process.stop()


async def measure(app: Any, issuer: Issuer, statements: Statements, reads: int) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://gateway/fhir", timeout=120.0
    ) as client:
        citizen = {
            "Authorization": "Bearer "
            + issuer.token({"personnummer": TEST_PERSON, "scope": CITIZEN_SCOPE})
        }
        found = await client.post(
            "/Patient/_search",
            data={"identifier": f"{PERSONNUMMER_SYSTEM}|{TEST_PERSON}"},
            headers=citizen,
        )
        found.raise_for_status()
        patient_id = next(
            e["resource"]["id"]
            for e in found.json()["entry"]
            if e["resource"]["resourceType"] == "Patient"
        )
        fhir_json = {"Content-Type": "application/fhir+json"}
        granted = await client.post(
            "/Consent",
            content=orjson.dumps(consent_body(patient_id, CLINICIAN_CARE_PROVIDER)),
            headers=citizen | fhir_json,
        )
        if granted.status_code != 201:
            raise RuntimeError(f"consent not recorded: {granted.text[:300]}")
        prefix = CLINICIAN_CARE_PROVIDER.split("-")[0]
        clinician = {"Authorization": "Bearer " + issuer.clinician_token(hsa_id=f"{prefix}-DOC1")}
        url = f"/Observation?patient={patient_id}&_count={PAGE_SIZE}"

        async def case(label: str, headers: Mapping[str, str]) -> None:
            await read_pages(client, url, headers, 5)  # warm
            await asyncio.sleep(0.2)
            statements.seen.clear()
            await read_pages(client, url, headers, reads)
            statements.report(label, reads)

        await case("clinician with consent", clinician)
        await case("the person", citizen)
        recorded = await client.post(
            "/Observation",
            content=orjson.dumps(body_weight(patient_id)),
            headers=citizen | fhir_json,
        )
        if recorded.status_code != 201:
            raise RuntimeError(f"measurement not recorded: {recorded.text[:300]}")
        await case("the person, who recorded a measurement", citizen)
        settings = {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "kind", "valueCode": "access"},
                {"name": "email", "valueString": "tolvan@example.test"},
            ],
        }
        chosen = await client.post(
            f"/Patient/{patient_id}/$notification-settings",
            content=orjson.dumps(settings),
            headers=citizen | fhir_json,
        )
        if chosen.status_code != 200:
            raise RuntimeError(f"notice settings not chosen: {chosen.text[:300]}")
        await case("clinician, the person told of reads", clinician)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reads", type=int, default=50, help="reads counted per case")
    parser.add_argument("--postgres", default=POSTGRES_ADMIN_URL, help="admin database URL")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()

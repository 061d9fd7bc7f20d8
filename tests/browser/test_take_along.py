"""Taking the record along, in a real browser against the gateway on loopback: Tolvan
prints his overview and his patient summary (printed to PDF by Chromium, the PDF's text
read back with pypdf: the Swedish headings and his values are there, the app's buttons and
menus are not), downloads his IPS document and his whole record as files, shares his
record with a care unit for 30 days in one step, and sees his downloads in his access
log. axe-core finds no serious or critical WCAG 2.1 AA violation on the new page."""

from __future__ import annotations

import io
import json
import re
import unicodedata
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import fhirkit
import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from pypdf import PdfReader

from tests.browser.conftest import serious_violations
from tests.browser.test_webapp import log_in, session_of
from tests.conftest import IssuerKit
from tests.gateway.conftest import Region
from tests.gateway.smart_helpers import APP, Served, served_dev_gateway

#: A care unit Tolvan shares his record with.
CARE_UNIT = "SE2321009001-MEDM"
#: The summary's sections that are always there (IPS requires them), in Swedish.
REQUIRED_SECTIONS = ("Läkemedel", "Allergier och överkänslighet", "Aktuella problem och diagnoser")
IDENTITY_NUMBERS = re.compile(r"19121212-?1212|121212-?1212")


@pytest.fixture
def served(tmp_path: Path, issuer: IssuerKit, regions: dict[str, Region]) -> Iterator[Served]:
    with served_dev_gateway(
        tmp_path, issuer, regions, web_app=True, web_app_client_id=APP
    ) as served:
        yield served


def printed_text(page: Page) -> str:
    """What the page prints, as Chromium prints it to PDF, read back as text (spaces and
    line breaks made single spaces; the typesetter's ligatures, such as "ﬁ", as letters)."""
    pdf = page.pdf(format="A4", print_background=False)
    reader = PdfReader(io.BytesIO(pdf))
    text = " ".join(sheet.extract_text() or "" for sheet in reader.pages)
    return plain(unicodedata.normalize("NFKC", text))


def plain(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_tolvan_prints_downloads_and_shares_his_record(
    browser: Browser, served: Served, tmp_path: Path
) -> None:
    context = browser.new_context(
        locale="sv-SE", timezone_id="Europe/Stockholm", accept_downloads=True
    )
    try:
        page = context.new_page()
        log_in(page, served)

        # The overview, printed: its headings and values, none of the app's controls.
        diagnosis = plain(page.locator("#kat-diagnoser + table tbody tr td").nth(1).inner_text())
        printed = printed_text(page)
        for heading in ("Min översikt", "Källor", "Diagnoser", "Labbsvar", "Tidslinje"):
            assert heading in printed, heading
        assert diagnosis
        assert diagnosis in printed
        assert "Utskrift från Samlad" in printed
        for control in ("Logga ut", "Skriv ut", "Hoppa till innehållet", "Samtycken och spärrar"):
            assert control not in printed, control
        assert not IDENTITY_NUMBERS.search(printed)

        # The summary page, in Swedish.
        page.get_by_role("button", name="Sammanfattning", exact=True).click()
        expect(page.get_by_role("heading", name="Sammanfattning", level=1)).to_be_visible()
        for section in REQUIRED_SECTIONS:
            expect(page.get_by_role("heading", name=section, exact=True)).to_be_visible()
        expect(page.get_by_text("Tolvan Tolvansson, född 1912-12-12")).to_be_visible()
        assert serious_violations(page) == []
        medicine = plain(
            page.locator("section.category")
            .filter(has=page.get_by_role("heading", name="Läkemedel", exact=True))
            .locator("tbody tr td")
            .nth(1)
            .inner_text()
        )

        printed = printed_text(page)
        for heading in ("Sammanfattning", "Tolvan Tolvansson", *REQUIRED_SECTIONS):
            assert heading in printed, heading
        assert medicine
        assert medicine in printed
        for control in ("Ladda ner", "Dela med en vårdenhet", "Logga ut"):
            assert control not in printed, control

        # The IPS document and the whole record, downloaded as files.
        with page.expect_download() as summary_download:
            page.get_by_role("button", name="Ladda ner sammanfattningen").click()
        document_file = summary_download.value
        assert re.fullmatch(
            r"samlad-patientsammanfattning-\d{4}-\d{2}-\d{2}\.json",
            document_file.suggested_filename,
        )
        document = json.loads(Path(document_file.path()).read_text(encoding="utf-8"))
        assert document["resourceType"] == "Bundle"
        assert document["type"] == "document"
        assert fhirkit.validate(document) == []
        expect(
            page.get_by_text(f"Filen {document_file.suggested_filename} är nedladdad.")
        ).to_be_visible()

        with page.expect_download() as record_download:
            page.get_by_role("button", name="Ladda ner hela journalen").click()
        record_file = record_download.value
        assert record_file.suggested_filename.endswith(".ndjson")
        lines = Path(record_file.path()).read_text(encoding="utf-8").splitlines()
        kinds = [json.loads(line)["resourceType"] for line in lines]
        assert kinds[0] == "Patient"
        assert kinds[-1] == "OperationOutcome"
        assert "Provenance" in kinds

        # Shared with a care unit in one step: 30 days unless he chooses otherwise.
        share = page.locator("form").filter(
            has=page.get_by_role("group", name="Dela med en vårdenhet")
        )
        expect(share.get_by_label("Antal dagar")).to_have_value("30")
        share.get_by_label("Vårdenhetens HSA-id").fill(CARE_UNIT)
        share.get_by_role("button", name="Dela").click()
        expect(share.get_by_role("status")).to_contain_text(f"Delat med {CARE_UNIT} till och med")
        assert serious_violations(page) == []
        session = session_of(page)
        consents = httpx.get(
            f"{served.public}/fhir/Consent?patient={session['patient']}",
            headers={"Authorization": f"Bearer {session['accessToken']}"},
        ).json()
        (shared,) = [
            e["resource"]
            for e in consents["entry"]
            if e["resource"]["resourceType"] == "Consent"
            and e["resource"]["provision"]["actor"][0]["reference"]["identifier"]["value"]
            == CARE_UNIT
        ]
        assert shared["status"] == "active"
        assert shared["provision"]["type"] == "permit"
        period = shared["provision"]["period"]
        length = datetime.fromisoformat(period["end"]) - datetime.fromisoformat(period["start"])
        assert length == timedelta(days=30)

        # Each download is in his log, as his own.
        page.get_by_role("button", name="Vem har läst").click()
        log = page.get_by_role("table", name="Vem har läst dina uppgifter")
        rows = log.locator("tbody tr").filter(has_text="Du själv")
        expect(rows.filter(has_text="laddade ner sammanfattningen").first).to_be_visible()
        expect(rows.filter(has_text="laddade ner hela journalen").first).to_be_visible()
        assert serious_violations(page) == []
    finally:
        context.close()

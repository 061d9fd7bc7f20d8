"""What each source shares, in the web app: over the demo's regions (Region Syd sharing no
lab results, nothing before 2001 and notes only from 2005), the citizen's overview says
what each region shares and since when, the lab results' category says which region
does not share them, and axe-core finds no serious or critical violation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from gateway.run.demo import demo_regions
from simregions.app import create_app as create_region_app
from simregions.behaviour import Behaviour
from simregions.server import start_in_thread
from tests.browser.conftest import serious_violations
from tests.browser.test_webapp import log_in
from tests.conftest import IssuerKit
from tests.gateway.conftest import Region
from tests.gateway.smart_helpers import APP, Served, served_dev_gateway

SYD = "Region Syd delar journalanteckningar från 2005, övrigt från 2001; inga labbsvar."


@pytest.fixture
def served(tmp_path: Path, issuer: IssuerKit) -> Iterator[Served]:
    started: dict[str, Region] = {}
    try:
        for spec in demo_regions():
            behaviour = Behaviour()
            started[spec.id] = Region(
                spec, behaviour, start_in_thread(create_region_app(spec, behaviour))
            )
        with served_dev_gateway(
            tmp_path, issuer, started, web_app=True, web_app_client_id=APP
        ) as served:
            yield served
    finally:
        for region in started.values():
            region.server.stop()


def test_the_overview_says_what_each_region_shares(browser: Browser, served: Served) -> None:
    context = browser.new_context(locale="sv-SE", timezone_id="Europe/Stockholm")
    try:
        page = context.new_page()
        log_in(page, served)
        shared = page.locator("ul.coverage li")
        for _ in range(20):  # what the regions offer is learned just after start-up
            if "Region Nord delar alla kategorier." in shared.all_inner_texts():
                break
            page.get_by_role("button", name="Min översikt").click()
            expect(page.get_by_role("heading", name="Tidslinje")).to_be_visible(timeout=60_000)
        texts = shared.all_inner_texts()
        assert SYD in texts, texts
        assert "Region Nord delar alla kategorier." in texts
        assert "Region Väst delar alla kategorier." in texts
        expect(page.get_by_role("heading", name="Vad källorna delar")).to_be_visible()
        expect(page.locator("#kat-labb ~ p.not-shared").first).to_have_text(
            "Delas inte av Region Syd."
        )
        assert page.locator("#kat-diagnoser ~ p.not-shared").count() == 0
        assert serious_violations(page) == []
    finally:
        context.close()

"""The citizen records a blood pressure and describes symptoms in the web app, and sees
both in the overview marked as reported by the patient; axe-core finds no serious or
critical WCAG 2.1 AA violation on the form or the overview."""

from __future__ import annotations

from playwright.sync_api import Browser, expect

from tests.browser.test_webapp import accessible, log_in, served  # noqa: F401 (a fixture)
from tests.gateway.conftest import Region
from tests.gateway.smart_helpers import Served


def test_the_citizen_records_a_blood_pressure_and_describes_symptoms(
    browser: Browser,
    served: Served,  # noqa: F811
    regions: dict[str, Region],
) -> None:
    context = browser.new_context(locale="sv-SE", timezone_id="Europe/Stockholm")
    try:
        page = context.new_page()
        log_in(page, served)
        page.get_by_role("button", name="Egna mätningar och symtom").click()
        expect(
            page.get_by_role("heading", name="Egna mätningar och symtom", level=1)
        ).to_be_visible()
        accessible(page)
        page.get_by_label("Övre tryck (systoliskt, mmHg)").fill("128")
        page.get_by_label("Undre tryck (diastoliskt, mmHg)").fill("84")
        page.get_by_role("button", name="Spara blodtryck").click()
        expect(page.locator("#innehall").get_by_text("Blodtrycket är sparat.")).to_be_visible()
        page.get_by_label("Vad besvärar dig?").fill("Hosta i tre dagar")
        page.get_by_label("Hur svårt är det?").select_option("moderate")
        page.get_by_label("Jag har feber").check()
        page.get_by_role("button", name="Spara symtombeskrivning").click()
        expect(
            page.locator("#innehall").get_by_text("Symtombeskrivningen är sparad.")
        ).to_be_visible()
        accessible(page)

        page.get_by_role("button", name="Min översikt").click()
        rows = page.locator("#kat-egna + table tbody tr")
        expect(rows).to_have_count(2, timeout=60_000)
        expect(rows.filter(has_text="Systolic blood pressure 128")).to_have_count(1)
        expect(rows.filter(has_text="Symtombeskrivning: Hosta i tre dagar, feber")).to_have_count(1)
        for index in range(2):
            expect(rows.nth(index).locator("td").nth(2)).to_contain_text("Rapporterat av patienten")
        accessible(page)
    finally:
        context.close()

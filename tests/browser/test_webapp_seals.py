"""The person's own access in the web app, in a real browser: on "Samtycken och
spärrar" the citizen hides Region Syd from their own view (its data and its status
vanish from the overview), shows it again, and turns delayed release on and off; every
view passes axe-core (no serious or critical WCAG 2.1 AA violation)."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect

from tests.browser.test_webapp import accessible, log_in
from tests.browser.test_webapp import served as served
from tests.gateway.smart_helpers import Served

SYD_PROVIDER = "SE2321009003-SYD0"


def _choices(page: Page) -> None:
    page.get_by_role("button", name="Samtycken och spärrar").click()
    expect(page.get_by_role("heading", name="Samtycken och spärrar", level=1)).to_be_visible()


def _statuses(page: Page) -> str:
    page.get_by_role("button", name="Min översikt").click()
    expect(page.get_by_role("heading", name="Tidslinje")).to_be_visible(timeout=60_000)
    return "\n".join(page.locator("section.status li").all_inner_texts())


def test_the_citizen_hides_a_region_from_their_own_view_and_turns_on_delayed_release(
    browser: Browser, served: Served
) -> None:
    context = browser.new_context(locale="sv-SE", timezone_id="Europe/Stockholm")
    try:
        page = context.new_page()
        log_in(page, served)
        assert "Region Syd" in _statuses(page)

        _choices(page)
        form = page.locator("form").filter(has=page.get_by_role("group", name="Dölj för dig själv"))
        form.get_by_label("HSA-id").fill(SYD_PROVIDER)
        form.get_by_label("Nivå").select_option("care-provider")
        form.get_by_role("button", name="Dölj").click()
        show_again = page.get_by_role("button", name=f"Visa igen för {SYD_PROVIDER} (vårdgivare)")
        expect(show_again).to_be_visible()
        expect(page.get_by_role("cell", name="Dold för dig")).to_be_visible()
        accessible(page)

        statuses = _statuses(page)
        assert "Region Syd" not in statuses, "the sealed region is not named"
        assert "Region Nord" in statuses
        assert SYD_PROVIDER not in page.locator("main").inner_text()
        accessible(page)

        _choices(page)
        page.get_by_role("button", name=f"Visa igen för {SYD_PROVIDER} (vårdgivare)").click()
        expect(page.get_by_role("cell", name="Upphört")).to_be_visible()
        assert "Region Syd" in _statuses(page)

        _choices(page)
        delay = page.locator("form").filter(has=page.get_by_role("group", name="Fördröjd visning"))
        expect(delay.get_by_label("Antal dagar")).to_have_value("14")
        delay.get_by_role("button", name="Slå på fördröjd visning").click()
        expect(page.get_by_role("cell", name="Fördröjd visning")).to_be_visible()
        accessible(page)
        page.get_by_role("button", name="Stäng av").first.click()
        expect(page.get_by_role("button", name="Stäng av")).to_have_count(0)
        accessible(page)
    finally:
        context.close()

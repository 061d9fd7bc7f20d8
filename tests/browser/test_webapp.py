"""The web app in a real browser against the gateway on loopback: the citizen logs in by
the authorization-code flow, sees every category, a lab trend across regions and the
sources' status; the clinician, before any consent, is told plainly there is none; the
citizen grants the clinician's care provider consent and the clinician reads the record;
the citizen withdraws; the clinician's next load says no consent, and emergency access
opens it; the citizen sees the clinician's reads, the refusals and the emergency access
in the log. Care staff of a provider never consented to open emergency access from the
refused search itself. axe-core finds no serious or critical WCAG 2.1 AA violation on any view of
either role, and no identity number is ever in an address the app asks for."""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Request, expect

from tests.browser.conftest import serious_violations
from tests.conftest import IssuerKit
from tests.gateway.conftest import Region
from tests.gateway.smart_helpers import APP, Served, served_dev_gateway

#: The categories the overview shows, by the start of their headings.
CATEGORIES = (
    "Vårdkontakter",
    "Journalanteckningar",
    "Diagnoser",
    "Läkemedel",
    "Uthämtade läkemedel",
    "Vaccinationer",
    "Uppmärksamhetsinformation och allergier",
    "Labbsvar",
    "Svar och utlåtanden",
    "Mätningar",
    "Bedömningar",
    "Remisser",
    "Åtgärder",
    "Vårdplaner",
    "Vårdteam",
    "Kommande tidsbokningar",
    "Tidigare tidsbokningar",
    "Tidslinje",
)
#: The development login's default clinician (gateway/run/authserver/pages.py).
CLINICIAN = "SE2321009001-DOC1"
CARE_PROVIDER = "SE2321009001-NORD"
#: Care staff of a provider the person never consented to.
OTHER_STAFF = {
    "hsa_id": "SE2321009002-DOC9",
    "care_unit": "SE2321009002-AKUT",
    "care_provider": "SE2321009002-SYD",
}
#: Logins with the app's files in the browser's cache, for the first useful paint's median.
WARM_LOGINS = 5
IDENTITY_NUMBERS = re.compile(r"19121212-?1212|121212-?1212")


@pytest.fixture
def served(tmp_path: Path, issuer: IssuerKit, regions: dict[str, Region]) -> Iterator[Served]:
    # Every source asked on every read (as in the demo), so that a source going down shows.
    with served_dev_gateway(
        tmp_path, issuer, regions, web_app=True, web_app_client_id=APP, cache_fresh_seconds=0
    ) as served:
        yield served


#: Make the tab's access token look run out.
EXPIRE = """() => {
  const session = JSON.parse(sessionStorage.getItem('samlad.session'));
  session.expiresAt = 0;
  sessionStorage.setItem('samlad.session', JSON.stringify(session));
}"""


def session_of(page: Page) -> dict[str, Any]:
    session: dict[str, Any] = page.evaluate("JSON.parse(sessionStorage.getItem('samlad.session'))")
    return session


def watch_addresses(page: Page, seen: list[str]) -> None:
    def note(request: Request) -> None:
        seen.append(request.url)

    page.on("request", note)


def accessible(page: Page) -> None:
    assert serious_violations(page) == [], page.url


def log_in(
    page: Page, served: Served, *, clinician: bool = False, staff: dict[str, str] | None = None
) -> float:
    """From the app's start page through the development login back to the app; the
    milliseconds from the app's page after the login to its first useful paint (the
    overview, or the clinician's search)."""
    page.goto(f"{served.public}/")
    expect(page).to_have_url(f"{served.public}/app/")
    login = page.get_by_role("button", name="Logga in", exact=True)
    expect(login).to_be_visible()
    accessible(page)
    # By keyboard: the skip link first, then the login.
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(login).to_be_focused()
    page.keyboard.press("Enter")
    role = "Logga in som vårdpersonal" if clinician else "Logga in som invånare"
    for field, value in (staff or {}).items():
        page.locator(f"input#{field}").fill(value)
    page.get_by_role("button", name=role).click()
    page.get_by_role("button", name="Godkänn").click()
    page.wait_for_url(f"{served.public}/app/**")
    ready = (
        page.get_by_role("heading", name="Tidslinje")
        if not clinician
        else page.get_by_role("heading", name="Patientöversikt")
    )
    expect(ready).to_be_visible(timeout=60_000)
    assert "code=" not in page.url, "the code is taken out of the address bar"
    if clinician:
        return 0.0
    mark = page.evaluate("performance.getEntriesByName('samlad-overview')[0].startTime")
    assert isinstance(mark, int | float)
    return float(mark)


def check_citizen_overview(page: Page, regions: dict[str, Region]) -> None:
    headings = page.locator("main h2").all_inner_texts()
    for category in CATEGORIES:
        assert any(h.startswith(category) for h in headings), category
    statuses = page.locator("section.status li").all_inner_texts()
    for region in regions.values():
        assert f"{region.spec.name} svarade" in "\n".join(statuses)
    # Every row of a category says where it came from.
    origin = page.locator("#kat-diagnoser + table tbody tr td").nth(2)
    expect(origin).to_contain_text("Region")
    expect(origin).to_contain_text("vårdgivare SE")


def open_trend_across_regions(page: Page) -> None:
    """The first analysis answered by more than one region: its trend, by keyboard."""
    rows = page.locator("#kat-labb ~ table tbody tr")
    expect(rows.first).to_be_visible()
    across = rows.filter(has_text=re.compile(r"\(Region [^)]*, Region")).first
    name = across.locator("td").first.inner_text()
    across.get_by_role("button", name=re.compile("^Visa trend")).focus()
    page.keyboard.press("Enter")
    trend = page.get_by_role("region", name=f"Trend: {name}")
    expect(trend).to_be_visible()
    expect(trend).to_be_focused()
    expect(trend.locator("canvas").first).to_be_attached()  # uPlot drew the chart
    sources = trend.locator("table tbody tr td:nth-child(4)").all_inner_texts()
    assert len(set(sources)) >= 2, sources
    ranges = trend.locator("table tbody tr td:nth-child(3)").all_inner_texts()
    assert any(ranges), "the reference range is in the table"
    accessible(page)


def grant(page: Page) -> None:
    page.get_by_role("button", name="Samtycken och spärrar").click()
    expect(page.get_by_role("heading", name="Samtycken och spärrar", level=1)).to_be_visible()
    form = page.locator("form").filter(has=page.get_by_role("group", name="Ge samtycke"))
    form.get_by_label("HSA-id").fill(CARE_PROVIDER)
    form.get_by_label("Nivå").select_option("care-provider")
    form.get_by_role("button", name="Ge samtycke").click()
    expect(page.get_by_role("button", name=f"Återkalla för {CARE_PROVIDER}")).to_be_visible()
    accessible(page)


def search(page: Page) -> None:
    expect(page.get_by_role("heading", name="Patientöversikt")).to_be_visible()
    accessible(page)
    page.get_by_label("Patientens personnummer").fill("19121212-1212")
    page.get_by_role("button", name="Sök patient").click()


def clinician_reads(page: Page) -> None:
    search(page)
    expect(page.get_by_role("heading", name="Tidslinje")).to_be_visible(timeout=60_000)
    expect(page.get_by_role("note")).to_contain_text("spärrat")
    assert "1212" not in page.url
    accessible(page)


def test_the_citizen_and_the_clinician_in_the_browser(
    browser: Browser, served: Served, regions: dict[str, Region]
) -> None:
    citizen_context = browser.new_context(locale="sv-SE", timezone_id="Europe/Stockholm")
    clinician_context = browser.new_context(locale="sv-SE", timezone_id="Europe/Stockholm")
    other_context = browser.new_context(locale="sv-SE", timezone_id="Europe/Stockholm")
    seen: list[str] = []
    try:
        citizen = citizen_context.new_page()
        clinician = clinician_context.new_page()
        watch_addresses(citizen, seen)
        watch_addresses(clinician, seen)

        # An answer that is not this tab's login (its state unknown) is refused unread.
        citizen.goto(f"{served.public}/app/?code=forged&state=forged")
        expect(citizen.get_by_role("alert")).to_contain_text("hörde inte till")
        assert not [url for url in seen if url.endswith("/dev-issuer/token")]

        first = log_in(citizen, served)
        accessible(citizen)
        check_citizen_overview(citizen, regions)
        open_trend_across_regions(citizen)

        # A region down: the next overview says so plainly, and shows its earlier data.
        regions["syd"].behaviour.fault = "down"
        citizen.get_by_role("button", name="Min översikt").click()
        stale = citizen.locator("section.status li[data-status=stale]")
        expect(stale).to_have_text(
            # (with the date too when the browser's day is not the gateway's)
            re.compile(r"^Region Syd svarade inte; visar uppgifter från (.+ )?\d\d:\d\d\.$")
        )
        regions["syd"].behaviour.fault = "none"

        # Logged out and in again, the app's files cached: the warm first useful paint.
        warm = []
        for _ in range(WARM_LOGINS):
            citizen.get_by_role("button", name="Logga ut").click()
            warm.append(log_in(citizen, served))
        print(
            f"\nfirst useful paint after login: the first {first:.0f} ms; warm, median of "
            f"{len(warm)}: {statistics.median(warm):.0f} ms "
            f"({', '.join(f'{ms:.0f}' for ms in warm)})"
        )

        # The access token run out: the next call renews it with the refresh token, which
        # rotates; the tokens are in the tab's sessionStorage only.
        # The clinician before any consent: the search itself is refused, plainly.
        log_in(clinician, served, clinician=True)
        search(clinician)
        expect(clinician.get_by_role("heading", name="Inget samtycke")).to_be_visible()
        accessible(clinician)

        before = session_of(citizen)
        citizen.evaluate(EXPIRE)
        grant(citizen)
        after = session_of(citizen)
        assert after["refreshToken"] != before["refreshToken"]
        assert after["accessToken"] != before["accessToken"]
        assert citizen.evaluate("localStorage.length") == 0

        clinician_reads(clinician)

        citizen.get_by_role("button", name=f"Återkalla för {CARE_PROVIDER}").click()
        expect(citizen.get_by_role("cell", name="Upphört")).to_be_visible()

        clinician.get_by_role("button", name="Läs in igen").click()
        expect(clinician.get_by_role("heading", name="Inget samtycke")).to_be_visible()
        accessible(clinician)
        clinician.get_by_label("Skäl till nödåtkomst").fill("Medvetslös på akuten")
        clinician.get_by_role("button", name="Öppna nödåtkomst").click()
        expect(clinician.get_by_role("heading", name="Tidslinje")).to_be_visible(timeout=60_000)

        citizen.get_by_role("button", name="Vem har läst").click()
        log = citizen.get_by_role("table", name="Vem har läst dina uppgifter")
        expect(log).to_be_visible()
        rows = log.locator("tbody tr")
        by_clinician = rows.filter(has_text=f"Vårdpersonal {CLINICIAN}")
        expect(by_clinician.filter(has_text="Tillåten").first).to_be_visible()
        expect(by_clinician.filter(has_text="Nekad").first).to_be_visible()
        expect(
            by_clinician.filter(has_text="Nödåtkomst: Medvetslös på akuten").first
        ).to_be_visible()
        accessible(citizen)
        citizen.get_by_role("button", name="Meddelanden").click()
        expect(citizen.get_by_label("När någon annan läser min journal")).not_to_be_checked()
        expect(citizen.get_by_label("E-postadress")).to_be_visible()
        accessible(citizen)

        # Care staff of another provider, whom the search refuses (no consent at all),
        # open emergency access from that refusal: the identity number goes in the body,
        # the gateway answers the patient's id, and the record opens.
        other = other_context.new_page()
        watch_addresses(other, seen)
        log_in(other, served, clinician=True, staff=OTHER_STAFF)
        search(other)
        expect(other.get_by_role("heading", name="Inget samtycke")).to_be_visible()
        other.get_by_label("Skäl till nödåtkomst").fill("Medvetslös, ingen anhörig nåbar")
        other.get_by_role("button", name="Öppna nödåtkomst").click()
        expect(other.get_by_role("heading", name="Tidslinje")).to_be_visible(timeout=60_000)
        accessible(other)
        citizen.get_by_role("button", name="Vem har läst").click()
        expect(
            citizen.get_by_role("table", name="Vem har läst dina uppgifter")
            .locator("tbody tr")
            .filter(has_text=f"Vårdpersonal {OTHER_STAFF['hsa_id']}")
            .filter(has_text="Nödåtkomst: Medvetslös, ingen anhörig nåbar")
            .first
        ).to_be_visible()
    finally:
        citizen_context.close()
        clinician_context.close()
        other_context.close()
    assert seen, "the pages asked for something"
    assert not [url for url in seen if IDENTITY_NUMBERS.search(url)]

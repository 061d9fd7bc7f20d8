"""A proxy in the web app, in a real browser: Tolvan gives another adult a proxy for
medicines and lab results under "Samtycken och spärrar"; the proxy logs in as themselves,
picks Tolvan's record at the login, sees its overview (and nothing of his consents or
log); Tolvan sees the proxy's reads in his log and withdraws the proxy. axe-core finds no
serious or critical violation on the new views and the login's choice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.test_webapp import accessible, log_in, watch_addresses
from tests.conftest import IssuerKit
from tests.gateway.conftest import Region
from tests.gateway.smart_helpers import APP, Served, served_dev_gateway

PROXY = "197904105082"


@pytest.fixture
def served(tmp_path: Path, issuer: IssuerKit, regions: dict[str, Region]) -> Iterator[Served]:
    with served_dev_gateway(tmp_path, issuer, regions, web_app=True, web_app_client_id=APP) as it:
        yield it


def test_a_proxy_in_the_browser(browser: Browser, served: Served) -> None:
    tolvan_context = browser.new_context(locale="sv-SE", timezone_id="Europe/Stockholm")
    proxy_context = browser.new_context(locale="sv-SE", timezone_id="Europe/Stockholm")
    seen: list[str] = []
    try:
        tolvan = tolvan_context.new_page()
        watch_addresses(tolvan, seen)
        log_in(tolvan, served)
        tolvan.get_by_role("button", name="Samtycken och spärrar").click()
        form = tolvan.locator("form").filter(
            has=tolvan.get_by_role("group", name="Ge fullmakt till ett ombud")
        )
        expect(form).to_be_visible()
        form.get_by_label("Ombudets personnummer").fill("19790410-5082")
        form.get_by_label("Läkemedel").check()
        form.get_by_label("Provsvar").check()
        form.get_by_role("button", name="Ge fullmakt").click()
        grants = tolvan.get_by_role("table", name="Dina samtycken, spärrar och fullmakter")
        row = grants.locator("tbody tr").filter(has_text="Fullmakt")
        expect(row).to_contain_text("19790410-5082 (läkemedel, provsvar)")
        expect(row).to_contain_text("Gäller")
        accessible(tolvan)

        proxy = proxy_context.new_page()
        watch_addresses(proxy, seen)
        proxy.goto(f"{served.public}/app/")
        proxy.get_by_role("button", name="Logga in", exact=True).click()
        proxy.locator("select#person").select_option(PROXY)
        proxy.get_by_role("button", name="Logga in som invånare").click()
        choice = proxy.get_by_role("group", name="Vems journal vill du öppna?")
        expect(choice).to_be_visible()
        accessible(proxy)
        choice.get_by_label("Tolvan", exact=False).check()
        proxy.get_by_role("button", name="Godkänn").click()
        expect(proxy.get_by_role("heading", name="Tidslinje")).to_be_visible(timeout=60_000)
        picker = proxy.get_by_label("Vems journal")
        expect(picker).to_contain_text("som ombud")
        # Another's record: its overview only, not his choices or his log.
        expect(proxy.get_by_role("button", name="Samtycken och spärrar")).to_have_count(0)
        timeline = proxy.locator("main")
        expect(timeline).to_contain_text("Labbsvar: ")
        expect(timeline).to_contain_text("Uthämtade läkemedel: ")
        expect(timeline).not_to_contain_text("Diagnoser: ")
        expect(timeline).not_to_contain_text("Vårdkontakter: ")
        accessible(proxy)

        tolvan.get_by_role("button", name="Vem har läst").click()
        log = tolvan.get_by_role("table", name="Vem har läst dina uppgifter")
        expect(log.locator("tbody tr").filter(has_text="Ditt ombud").first).to_be_visible()
        accessible(tolvan)

        tolvan.get_by_role("button", name="Samtycken och spärrar").click()
        tolvan.get_by_role("button", name="Återkalla för 19790410-5082").click()
        expect(grants.locator("tbody tr").filter(has_text="Fullmakt")).to_contain_text("Upphört")
    finally:
        tolvan_context.close()
        proxy_context.close()
    assert not [url for url in seen if PROXY in url or "19790410" in url]

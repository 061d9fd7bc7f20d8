"""A real browser for the pages Samlad serves: Debian's Chromium driven by Playwright
(scripts/ensure-chromium installs it; Playwright's own browser download is never used),
and axe-core from tests/js (the npm lock) injected into a page to check accessibility."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

# The simulated regions, started once per module as for the gateway's own tests.
from tests.gateway.conftest import regions as regions

CHROMIUM = os.environ.get("SAMLAD_CHROMIUM", "/usr/bin/chromium")
# Headless, and nothing reaching out: this machine's network is closed, and a test must
# not depend on anything but the pages under test.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
AXE = Path(__file__).parents[1] / "js" / "node_modules" / "axe-core" / "axe.min.js"
# WCAG 2.1 A and AA, the bar the pages are held to.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


# Per module, not per session: while Playwright's sync API runs it holds an asyncio loop
# in the main thread, and every async test after it in the same run would then fail
# ("Cannot run the event loop while another loop is running").
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).is_file(), f"no Chromium at {CHROMIUM}: run scripts/ensure-chromium"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="sv-SE", timezone_id="Europe/Stockholm")
    try:
        yield context.new_page()
    finally:
        context.close()


def serious_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical WCAG 2.1 AA violations on the page as it is now,
    each with the rule, its help text and the elements it found."""
    assert AXE.is_file(), "run make: npm ci in tests/js installs axe-core"
    # Evaluated through the browser's debugging protocol, which the pages' Content
    # Security Policy (rightly) does not let an inline script tag do.
    page.evaluate(AXE.read_text(encoding="utf-8"))
    found: dict[str, Any] = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", AXE_TAGS
    )
    return [
        {
            "rule": violation["id"],
            "impact": violation["impact"],
            "help": violation["help"],
            "nodes": [node["target"] for node in violation["nodes"]],
        }
        for violation in found["violations"]
        if violation["impact"] in ("serious", "critical")
    ]

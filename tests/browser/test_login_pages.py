"""The development login, as a person meets it in a browser: the login page and the
consent page work with the keyboard alone and have no serious or critical WCAG 2.1 AA
violation (axe-core)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import serious_violations
from tests.conftest import IssuerKit
from tests.gateway.conftest import Region
from tests.gateway.smart_helpers import (
    APP,
    Served,
    authorize_params,
    pkce,
    served_dev_gateway,
)


@pytest.fixture
def served(tmp_path: Path, issuer: IssuerKit, regions: dict[str, Region]) -> Iterator[Served]:
    with served_dev_gateway(tmp_path, issuer, regions) as served:
        yield served


def test_the_login_and_consent_pages_are_accessible_and_work_by_keyboard(
    served: Served, page: Page
) -> None:
    _, challenge = pkce()
    params = authorize_params(
        challenge,
        redirect_uri=f"{served.public}/app/",
        aud=served.settings.fhir_base_url,
        scope="openid fhirUser launch/patient patient/*.rs",
    )
    query = "&".join(f"{key}={value}" for key, value in params.items())
    page.goto(f"{served.public}/dev-issuer/authorize?{query}")
    assert page.locator("html").get_attribute("lang") == "sv"
    assert serious_violations(page) == []

    # The first test person is chosen already; the citizen's button is reached by Tab.
    page.get_by_role("button", name="Logga in som invånare").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Godkänn")).to_be_visible()
    assert serious_violations(page) == []

    page.get_by_role("button", name="Godkänn").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"{served.public}/app/**")
    answer = parse_qs(urlsplit(page.url).query)
    assert answer["state"] == [params["state"]]
    assert answer["code"][0]
    assert params["client_id"] == APP


def test_the_accessibility_check_finds_a_serious_violation(page: Page) -> None:
    """The check the pages pass is able to fail: a form field without a label and an
    image without a text alternative are both reported."""
    page.set_content(
        '<!doctype html><html lang="sv"><head><title>t</title></head><body><main>'
        '<input type="text"><img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">'
        "</main></body></html>"
    )
    assert {found["rule"] for found in serious_violations(page)} >= {"label", "image-alt"}

"""The web app's files at /app/: served only when ``web_app`` is on, with the app's strict
Content-Security-Policy and short public caching; nothing outside the app's folder, no
directory listing, a 404 OperationOutcome for anything else; ``/`` sent to the app."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway.http.headers import APP_CONTENT_SECURITY_POLICY, PUBLIC_MAX_AGE
from gateway.http.webapp import app_config, static_file
from gateway.run.app import create_app
from gateway.settings import Settings
from store.migrate import upgrade
from tests.conftest import IssuerKit
from tests.gateway.conftest import gateway_settings
from webapp import STATIC_DIR

pytestmark = pytest.mark.anyio


def settings_for(folder: Path, issuer: IssuerKit, **overrides: object) -> Settings:
    url = f"sqlite:///{folder / 'samlad.db'}"
    upgrade(url)
    return gateway_settings(url, issuer, {}, **overrides)


async def client_for(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        yield client


@pytest.fixture
async def served(tmp_path: Path, issuer: IssuerKit) -> AsyncIterator[httpx.AsyncClient]:
    async for client in client_for(settings_for(tmp_path, issuer, web_app=True)):
        yield client


@pytest.fixture
async def not_served(tmp_path: Path, issuer: IssuerKit) -> AsyncIterator[httpx.AsyncClient]:
    async for client in client_for(settings_for(tmp_path, issuer)):
        yield client


async def test_the_page_comes_with_a_strict_policy_and_short_public_caching(
    served: httpx.AsyncClient,
) -> None:
    page = await served.get("/app/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.text == (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    policy = page.headers["content-security-policy"]
    assert policy == APP_CONTENT_SECURITY_POLICY
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"] == "'self'"  # no inline script, no eval, no CDN
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == f"public, max-age={PUBLIC_MAX_AGE}"
    # No inline script in the page: every script is a file of the app's own.
    scripts = re.findall(r"<script\b[^>]*>", page.text)
    assert scripts
    assert all(" src=" in tag for tag in scripts), scripts

    again = await served.get("/app/", headers={"If-None-Match": page.headers["etag"]})
    assert again.status_code == 304
    assert again.headers["cache-control"] == f"public, max-age={PUBLIC_MAX_AGE}"

    script = await served.get("/app/app.js")
    assert script.status_code == 200
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    chart = await served.get("/app/vendor/uplot/uPlot.iife.min.js")
    assert chart.status_code == 200
    licence = await served.get("/app/vendor/uplot/LICENSE")
    assert licence.status_code == 200
    assert "MIT License" in licence.text


async def test_the_config_names_the_client_and_the_systems_from_the_profiles(
    served: httpx.AsyncClient, tmp_path: Path, issuer: IssuerKit
) -> None:
    answer = await served.get("/app/config.json")
    assert answer.status_code == 200
    config = answer.json()
    assert config["clientId"] == "samlad-app"
    assert config == app_config(settings_for(tmp_path / "other", issuer))
    assert config["systems"]["npu"] == "urn:oid:1.2.208.176.2.1"
    assert "patient/*.rs" in config["scope"].split()


@pytest.mark.parametrize(
    "path",
    [
        "/app/nothing.js",
        "/app/vendor/",  # a folder without an index: no listing
        "/app/vendor/uplot/",
        "/app/../pyproject.toml",
        "/app/%2e%2e/pyproject.toml",
        "/app/..%2f..%2fpyproject.toml",
        "/app/.hidden",
        "/app/__init__.py",
        "/app/%00",  # a NUL byte: the file system refuses the path
        "/app/index.html%00.js",
    ],
)
async def test_only_the_apps_files_are_served(served: httpx.AsyncClient, path: str) -> None:
    answer = await served.get(path)
    assert answer.status_code == 404, path
    assert answer.json()["resourceType"] == "OperationOutcome"
    assert answer.headers["cache-control"] == "no-store"


def test_no_file_outside_the_folder_is_found_whatever_the_path(tmp_path: Path) -> None:
    root = tmp_path / "static"
    root.mkdir()
    (root / "index.html").write_text("<!doctype html>", encoding="utf-8")
    (tmp_path / "secret.js").write_text("no", encoding="utf-8")
    (root / "link.js").symlink_to(tmp_path / "secret.js")
    assert static_file(root.resolve(), "") == (root / "index.html").resolve()
    for path in ("../secret.js", "link.js", "sub/../../secret.js", "index.html/"):
        with pytest.raises(Exception, match="not found"):
            static_file(root.resolve(), path)


async def test_the_root_goes_to_the_app_only_when_it_is_served(
    served: httpx.AsyncClient, not_served: httpx.AsyncClient
) -> None:
    home = await served.get("/")
    assert home.status_code == 303
    assert home.headers["location"] == "/app/"  # relative: never from the Host header
    folder = await served.get("/app")
    assert folder.headers["location"] == "/app/"

    assert (await not_served.get("/")).status_code == 404
    for path in ("/app/", "/app/index.html", "/app/config.json", "/app/app.js"):
        answer = await not_served.get(path)
        assert answer.status_code == 404, path
        assert answer.json()["resourceType"] == "OperationOutcome"

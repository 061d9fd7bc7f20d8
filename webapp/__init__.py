"""The web app: the citizen's and the clinician's overview in the browser, a SMART app of
plain ES modules, HTML and CSS under ``static/`` (no build step; uPlot vendored with its
licence). The gateway serves it at ``/app/`` when ``web_app`` is on
(``gateway/http/webapp.py``); it is data, with no Python beyond its path."""

from __future__ import annotations

from pathlib import Path

#: The folder of the app's files, served as they are.
STATIC_DIR = Path(__file__).resolve().parent / "static"

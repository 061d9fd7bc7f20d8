"""The web app's files at ``/app/`` (when ``web_app`` is on): the static files of the
``webapp`` package as they are, ``/app/config.json`` (what the app cannot know by itself:
its client id and the code systems and extensions it reads, from ``fhir_profiles``), and
``/`` sent to ``/app/``.

Only regular files inside the app's folder are served: no directory listing, no path out
of it, no hidden file; anything else is a 404 OperationOutcome. The headers (a
Content-Security-Policy that lets the page load only its own scripts and styles and talk
only to its own origin, and short public caching) are set by ``gateway/http/headers.py``
for every path under :data:`APP_PATH`.
"""

from __future__ import annotations

import hashlib
from email.utils import formatdate
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from fhir_profiles.codes import (
    CONSENT_SCOPE_SYSTEM,
    LOINC_SYSTEM,
    NPU_SYSTEM,
    OBSERVATION_CATEGORY_SYSTEM,
    ONLINE_ACCESS_SYSTEM,
    PARTICIPATION_TYPE_SYSTEM,
    RECORD_CATEGORY_SYSTEM,
    ROLE_CLASS_SYSTEM,
    ROLE_CODE_SYSTEM,
    UCUM_SYSTEM,
)
from fhir_profiles.coverage import EMPTY_CATEGORY_URL, SOURCE_COVERAGE_URL
from fhir_profiles.extensions import (
    EMERGENCY_ACCESS_URL,
    HSA_ORGANISATION_LEVEL_URL,
    RELEASE_DELAY_URL,
    SOURCE_STATUS_URL,
)
from fhir_profiles.identifiers import HSA_ID_SYSTEM, PERSONNUMMER_SYSTEM, SOURCE_SYSTEM
from fhir_profiles.own_data import (
    INFORMATION_SOURCE_SYSTEM,
    SYMPTOM_FORM_URL,
    SYMPTOM_SEVERITY_SYSTEM,
)
from fhir_profiles.record_status import CARE_PROVIDER_TAG, CARE_UNIT_TAG
from gateway.errors import NotFound
from gateway.settings import Settings
from webapp import STATIC_DIR

#: Where the app is served (its pages and files are under ``/app/``).
APP_PATH = "/app"
#: The page a folder's address serves.
INDEX = "index.html"
#: The media type of each kind of file the app has; any other is not served.
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    "": "text/plain; charset=utf-8",  # LICENSE
}
#: The scopes the app asks for; the authorization server grants those of the person's
#: context (a citizen's ``patient/``, a clinician's ``user/``) that the client registered.
APP_SCOPES = (
    "openid fhirUser launch/patient offline_access patient/*.rs patient/Consent.cu"
    " patient/Observation.cd patient/QuestionnaireResponse.cd user/*.rs"
)


def app_config(settings: Settings) -> dict[str, Any]:
    """What ``/app/config.json`` tells the app: who it logs in as and what it asks, and the
    systems and extensions of what it reads and writes (each fact once, here from
    ``fhir_profiles``)."""
    return {
        "clientId": settings.web_app_client_id,
        "scope": APP_SCOPES,
        "systems": {
            "personnummer": PERSONNUMMER_SYSTEM,
            "hsaId": HSA_ID_SYSTEM,
            "loinc": LOINC_SYSTEM,
            "npu": NPU_SYSTEM,
            "source": SOURCE_SYSTEM,
            "careProvider": CARE_PROVIDER_TAG,
            "careUnit": CARE_UNIT_TAG,
            "consentScope": CONSENT_SCOPE_SYSTEM,
            "participationType": PARTICIPATION_TYPE_SYSTEM,
            "roleClass": ROLE_CLASS_SYSTEM,
            "onlineAccess": ONLINE_ACCESS_SYSTEM,
            "ucum": UCUM_SYSTEM,
            "roleCode": ROLE_CODE_SYSTEM,
            "recordCategory": RECORD_CATEGORY_SYSTEM,
            "observationCategory": OBSERVATION_CATEGORY_SYSTEM,
            "informationSource": INFORMATION_SOURCE_SYSTEM,
            "symptomSeverity": SYMPTOM_SEVERITY_SYSTEM,
        },
        "symptomForm": SYMPTOM_FORM_URL,
        "extensions": {
            "sourceStatus": SOURCE_STATUS_URL,
            "organisationLevel": HSA_ORGANISATION_LEVEL_URL,
            "emergencyAccess": EMERGENCY_ACCESS_URL,
            "releaseDelay": RELEASE_DELAY_URL,
            "sourceCoverage": SOURCE_COVERAGE_URL,
            "emptyCategory": EMPTY_CATEGORY_URL,
        },
    }


def static_file(root: Path, path: str) -> Path:
    """The regular file ``path`` names inside ``root`` (a folder's address: its index),
    else :class:`NotFound`: nothing outside ``root``, no hidden file, no listing."""
    parts = [part for part in path.split("/") if part]
    if any(part.startswith(".") or "\\" in part for part in parts):
        raise NotFound("not found")
    candidate = root.joinpath(*parts)
    if path == "" or path.endswith("/"):
        candidate = candidate / INDEX
    try:
        resolved = candidate.resolve(strict=True)
    except (OSError, RuntimeError, ValueError):  # ValueError: a NUL in the path
        raise NotFound("not found") from None
    if not resolved.is_relative_to(root) or not resolved.is_file():
        raise NotFound("not found")
    if resolved.suffix not in MEDIA_TYPES:
        raise NotFound("not found")
    return resolved


def file_response(request: Request, file: Path) -> Response:
    """The file, with a strong ETag of its content (``If-None-Match`` gives 304)."""
    body = file.read_bytes()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Last-Modified": formatdate(file.stat().st_mtime, usegmt=True)}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=MEDIA_TYPES[file.suffix], headers=headers)


def build_webapp_router(settings: Settings, root: Path = STATIC_DIR) -> APIRouter:
    """The app's routes (none of them in the OpenAPI document: they are not the FHIR API
    and hold nothing personal)."""
    router = APIRouter(include_in_schema=False)
    config = app_config(settings)
    root = root.resolve()

    @router.get("/")
    async def home() -> Response:
        # A relative Location: never built from the request's Host header.
        return RedirectResponse(f"{APP_PATH}/", status_code=303)

    @router.get(APP_PATH)
    async def app_folder() -> Response:
        return RedirectResponse(f"{APP_PATH}/", status_code=303)

    @router.get(f"{APP_PATH}/config.json")
    async def app_configuration() -> Response:
        return JSONResponse(config)

    @router.get(APP_PATH + "/{path:path}")
    async def app_file(request: Request, path: str) -> Response:
        return file_response(request, static_file(root, path))

    return router

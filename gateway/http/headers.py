"""The security and caching headers of every answer, set in one ASGI middleware.

Every answer may hold personal data unless known otherwise, so every answer says
``Cache-Control: no-store`` (and ``Pragma: no-cache`` for HTTP/1.0 caches): no browser or
proxy keeps a person's record, an error answer included. The only exceptions are the
successful GETs of the public documents in :data:`PUBLIC_DOCUMENTS` (the
CapabilityStatement and the SMART discovery document), cacheable for
:data:`PUBLIC_MAX_AGE` seconds.

Every answer also carries :data:`SECURITY_HEADERS`: no MIME sniffing, no framing, no
referrer, and a Content-Security-Policy that allows nothing, since the gateway serves only
JSON (no HTML page: see docs/api.md on /docs), except the development login pages
(:data:`PAGES`), which set their own, and the web app under :data:`APP_PREFIX` (when
served), whose files get :data:`APP_CONTENT_SECURITY_POLICY` (its own scripts, styles and
origin only: no inline script, nothing from elsewhere) and, when found, short public
caching. ``Strict-Transport-Security`` is added when configured (``hsts_max_age``).

The middleware replaces any header of these names a route set, so no route can loosen
them.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.http.discovery import (
    AUTHORIZE_PATH,
    DEV_ISSUER_PATH,
    JWKS_PATH,
    OPENID_CONFIGURATION,
    SMART_CONFIGURATION,
)

#: Paths whose successful GET is public and the same for everyone.
PUBLIC_DOCUMENTS = frozenset(
    {
        "/fhir/metadata",
        SMART_CONFIGURATION,
        f"/fhir{SMART_CONFIGURATION}",
        OPENID_CONFIGURATION,
        f"{DEV_ISSUER_PATH}{OPENID_CONFIGURATION}",
        JWKS_PATH,
    }
)
#: The HTML pages (the development login): their answers keep the Content-Security-Policy
#: the page sets (its form's targets, its own style), else they get the one below.
PAGES = frozenset({AUTHORIZE_PATH})
#: How long a public document may be cached (seconds): a new release shows within it.
PUBLIC_MAX_AGE = 300

#: The web app's files (``gateway/http/webapp.py``): the same for everyone, nothing personal.
APP_PREFIX = "/app/"
#: The web app's policy: scripts, styles and connections to its own origin only (no
#: inline script or style element, no eval), never framed.
APP_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; manifest-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'none'"
)

#: The Content-Security-Policy of every answer: load nothing, be framed by nothing.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
)
_PRIVATE: tuple[tuple[bytes, bytes], ...] = (
    (b"cache-control", b"no-store"),
    (b"pragma", b"no-cache"),
)
_PUBLIC: tuple[tuple[bytes, bytes], ...] = (
    (b"cache-control", f"public, max-age={PUBLIC_MAX_AGE}".encode()),
)
_CSP = b"content-security-policy"
_APP_CSP = ((_CSP, APP_CONTENT_SECURITY_POLICY.encode()),)
_SET = frozenset(
    name for name, _ in (*SECURITY_HEADERS, *_PRIVATE, (b"strict-transport-security", b""))
)


class SecurityHeaders:
    """ASGI middleware: the headers above on every HTTP answer."""

    def __init__(self, app: ASGIApp, *, hsts_max_age: int = 0) -> None:
        """``hsts_max_age``: seconds for ``Strict-Transport-Security``; 0 sends none."""
        self.app = app
        hsts = ((b"strict-transport-security", f"max-age={hsts_max_age}".encode()),)
        self._always = SECURITY_HEADERS + (hsts if hsts_max_age > 0 else ())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        app_file = scope["path"].startswith(APP_PREFIX)
        public = scope["method"] == "GET" and (scope["path"] in PUBLIC_DOCUMENTS or app_file)
        # A file of the app unchanged (304) may be kept as long as the file itself.
        kept_codes = (200, 304) if app_file else (200,)
        page = scope["path"] in PAGES

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                caching = _PUBLIC if public and message["status"] in kept_codes else _PRIVATE
                headers = message.get("headers", ())
                kept = [(k, v) for k, v in headers if k.lower() not in _SET]
                always = self._always
                if page and any(k.lower() == _CSP for k, _ in headers):
                    kept += [(k, v) for k, v in headers if k.lower() == _CSP]
                    always = tuple((k, v) for k, v in always if k != _CSP)
                elif app_file:
                    always = tuple((k, v) for k, v in always if k != _CSP) + _APP_CSP
                message = {**message, "headers": [*kept, *always, *caching]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

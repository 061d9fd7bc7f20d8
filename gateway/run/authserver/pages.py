"""The development login's two pages, rendered on the server: who you are (a test person
or a clinician), then the scopes the app asks for. Swedish first, English beside it; plain
forms with labels, no script and no external asset. Each answer's Content-Security-Policy
allows its one inline style (by hash) and its form's targets only.
"""

from __future__ import annotations

import base64
import hashlib
from html import escape
from urllib.parse import urlsplit

from simregions.people import all_people

#: The parameters of an authorization request carried from page to page.
OAUTH_PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "aud",
    "code_challenge",
    "code_challenge_method",
    "nonce",
    "launch",
)

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.5;color:#1b1b1b;background:#fff}"
    ".dev{border:3px solid #8a1c00;background:#fff4e5;padding:.75rem 1rem;font-weight:600}"
    "fieldset{margin:1.5rem 0;padding:1rem;border:1px solid #555}"
    "label{display:block;margin-top:.75rem;font-weight:600}"
    "input,select,button{font-size:1rem;padding:.4rem;margin-top:.25rem}"
    "button{margin-top:1rem;margin-right:.5rem;cursor:pointer}"
    ".error{color:#8a1c00;font-weight:600}"
    ":focus{outline:3px solid #0b57d0;outline-offset:2px}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()

_DEV_NOTE = (
    '<p class="dev" role="note">Endast för utveckling: ersätter BankID och SITHS. '
    'Välj vem du är; ingen legitimering sker.<br><span lang="en">Development only: stands '
    "in for BankID/SITHS. Pick who you are; nobody is authenticated.</span></p>"
)

#: What each scope lets the app do, in Swedish and English.
SCOPE_TEXT = {
    "openid": ("Veta vem du är", "Know who you are"),
    "fhirUser": ("Veta vem du är i journalen", "Know who you are in the record"),
    "launch/patient": ("Veta vilken patients journal det gäller", "Know which patient's record"),
    "offline_access": (
        "Fortsätta utan ny inloggning (förnyelsebar åtkomst)",
        "Keep access without a new login (refresh token)",
    ),
    "patient/*.rs": ("Läsa och söka i hela din journal", "Read and search your whole record"),
    "patient/Consent.cu": (
        "Ge och återkalla samtycken och spärrar",
        "Grant and withdraw consents and blocks",
    ),
    "patient/Observation.cd": (
        "Spara och ta bort egna mätningar",
        "Record and delete your own measurements",
    ),
    "patient/QuestionnaireResponse.cd": (
        "Spara och ta bort egna symtombeskrivningar",
        "Record and delete your own symptom descriptions",
    ),
    "user/*.rs": (
        "Läsa och söka i de journaler du har rätt att se",
        "Read and search the records you may see",
    ),
}


def content_security_policy(redirect_uri: str | None) -> str:
    """This page's policy: its own style, forms sent here, and the redirect that follows
    to the client (browsers hold a form's redirect to ``form-action`` too)."""
    targets = "'self'"
    if redirect_uri:
        parts = urlsplit(redirect_uri)
        if parts.scheme in {"http", "https"} and parts.netloc:
            targets += f" {parts.scheme}://{parts.netloc}"
    return (
        f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action {targets}; "
        "frame-ancestors 'none'; base-uri 'none'"
    )


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="sv"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>{_DEV_NOTE}{body}</main></body></html>"
    )


def _hidden(values: dict[str, str]) -> str:
    return "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in values.items()
    )


def _people_options() -> str:
    options = []
    for person in all_people():
        number = f"{person.pnr[:8]}-{person.pnr[8:]}"
        label = f"{person.given} {person.family}, {number}"
        options.append(f'<option value="{escape(person.pnr)}">{escape(label)}</option>')
    return "".join(options)


def login_page(
    oauth: dict[str, str], client_id: str, error: str | None = None, clinician: bool = False
) -> str:
    """Who are you: a test person (citizen) or a clinician."""
    carried = _hidden({**oauth, "step": "login"})
    problem = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    citizen = (
        f'<form method="post">{carried}<input type="hidden" name="role" value="citizen">'
        '<fieldset><legend>Invånare <span lang="en">(citizen)</span></legend>'
        '<label for="person">Testperson <span lang="en">(test person)</span></label>'
        f'<select id="person" name="person">{_people_options()}</select>'
        '<label for="other">Eller annat personnummer <span lang="en">(or another identity '
        'number)</span></label><input id="other" name="other_personnummer" '
        'inputmode="numeric" autocomplete="off" placeholder="ÅÅÅÅMMDD-NNNN">'
        '<button type="submit">Logga in som invånare <span lang="en">(log in as a citizen)'
        "</span></button></fieldset></form>"
    )
    staff = (
        f'<form method="post">{carried}<input type="hidden" name="role" value="clinician">'
        '<fieldset><legend>Vårdpersonal <span lang="en">(clinician)</span></legend>'
        + _text_field("hsa_id", "HSA-id", "HSA id", "SE2321009001-DOC1")
        + _text_field("care_unit", "Vårdenhet (HSA-id)", "care unit", "SE2321009001-MEDM")
        + _text_field("care_provider", "Vårdgivare (HSA-id)", "care provider", "SE2321009001-NORD")
        + '<button type="submit">Logga in som vårdpersonal <span lang="en">(log in as a '
        "clinician)</span></button></fieldset></form>"
    )
    intro = f"<p>Appen <strong>{escape(client_id)}</strong> vill att du loggar in.</p>"
    forms = staff + citizen if clinician else citizen + staff
    return _page("Logga in (utveckling)", intro + problem + forms)


def _text_field(name: str, label: str, english: str, default: str) -> str:
    return (
        f'<label for="{name}">{escape(label)} <span lang="en">({escape(english)})</span></label>'
        f'<input id="{name}" name="{name}" value="{escape(default)}" required '
        'autocomplete="off" maxlength="64">'
    )


def person_label(pnr: str) -> str:
    """How the login names a person: a test person by name and number, else the number."""
    number = f"{pnr[:8]}-{pnr[8:]}"
    for person in all_people():
        if person.pnr == pnr:
            return f"{person.given} {person.family}, {number}"
    return number


def _patient_choice(patients: list[tuple[str, str]]) -> str:
    """Whose record to open: the citizen's own (first, chosen) and each person's they may
    act for; nothing to choose when there is only their own."""
    if len(patients) < 2:
        return ""
    options = "".join(
        f'<label><input type="radio" name="patient" value="{escape(patient_id)}"'
        f"{' checked' if index == 0 else ''}> {escape(label)}</label>"
        for index, (patient_id, label) in enumerate(patients)
    )
    return (
        '<fieldset><legend>Vems journal vill du öppna? <span lang="en">(whose record do you '
        f"want to open?)</span></legend>{options}</fieldset>"
    )


def consent_page(
    oauth: dict[str, str],
    who: dict[str, str],
    client_id: str,
    display: str,
    scopes: list[str],
    patients: list[tuple[str, str]] | None = None,
) -> str:
    """The scopes the app will get, to allow or deny; for a citizen who may act for others
    (a proxy, a legal representative), whose record to open (``patients``: id and label,
    their own first)."""
    items = []
    for scope in scopes:
        swedish, english = SCOPE_TEXT.get(scope, (scope, scope))
        items.append(
            f'<li>{escape(swedish)} <span lang="en">({escape(english)})</span> '
            f"<code>{escape(scope)}</code></li>"
        )
    listing = "".join(items) or '<li>Inga behörigheter <span lang="en">(no scopes)</span></li>'
    body = (
        f"<p>Inloggad som <strong>{escape(display)}</strong>.</p>"
        f"<p>Appen <strong>{escape(client_id)}</strong> ber om att få "
        '<span lang="en">(asks to)</span>:</p>'
        f"<ul>{listing}</ul>"
        f'<form method="post">{_hidden({**oauth, **who, "step": "consent"})}'
        f"{_patient_choice(patients or [])}"
        '<button type="submit" name="decision" value="allow">Godkänn <span lang="en">(allow)'
        '</span></button><button type="submit" name="decision" value="deny">Neka '
        '<span lang="en">(deny)</span></button></form>'
    )
    return _page("Godkänn åtkomst (utveckling)", body)

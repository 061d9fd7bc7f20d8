"""The patient's access log as a searchset: ``AuditEvent?patient=`` and its later pages.

Every page reads the log again through :class:`PatientChoices` (so who may read it is
decided, and the reading logged, every time): the keys of every entry shown, and then
only the page's entries, up to the last entry the first page saw. Entries appended since
(this very reading among them) neither shift nor repeat entries on later pages. The
cursor carries that entry's seq beside the search; the total is exact and counts only
the entries the principal is shown. Each Bundle carries the newest signed checkpoint, to
hold the log to later.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import Request

from consent.audit_fhir import checkpoint_extension, to_audit_event
from consent.principals import Principal
from gateway.access.choices import PatientChoices
from gateway.answer.bundles import searchset
from gateway.answer.log_search import parse_log_search, select
from gateway.answer.paging import PageState, check_snapshot, page, page_links, snapshot_of
from gateway.errors import BadRequest
from gateway.fhir_json import FhirJSONResponse
from gateway.http.deps import services
from gateway.http.searches import fingerprint, strict_handling, warnings_entry

#: The search a cursor of the access log names.
AUDIT_SEARCH = "AuditEvent"
#: The cursor's parameter holding the last entry (seq) the first page saw.
_UPTO = "_upto"


async def log_page(
    request: Request,
    desk: PatientChoices,
    principal: Principal,
    params: list[tuple[str, str]],
    state: PageState | None = None,
) -> FhirJSONResponse:
    """A page of the access log: the first (``state`` None) or the one a cursor names."""
    svc = services(request)
    upto: int | None = None
    if state is not None:
        given = dict(state.params).get(_UPTO, "")
        if not given.isdigit():
            raise BadRequest("the paging cursor is not valid")
        upto = int(given)
        params = [(n, v) for n, v in state.params if n != _UPTO]
    search = parse_log_search(params, strict=state is not None or strict_handling(request))
    view = await desk.access_log(search.patient, upto=upto)
    last = view.last
    matched = select(search, view.keys)
    snapshot = snapshot_of(str(seq) for seq in matched)
    base = svc.settings.fhir_base_url
    self_url = None
    if state is None:
        state = PageState(
            AUDIT_SEARCH,
            (*search.params, (_UPTO, str(last))),
            0,
            search.count,
            snapshot,
            fingerprint(principal, svc),
        )
        query = urlencode([*search.params, ("_count", str(search.count))])
        self_url = f"{base}/AuditEvent?{query}"
    else:
        check_snapshot(state, snapshot)
    shown = [] if search.count_only else page(matched, state.offset, state.count)[0]
    events = [to_audit_event(entry, base_url=base) for entry in await view.entries(shown)]
    bundle = searchset(events, None, base_url=base, self_link=self_url or base)
    bundle["total"] = len(matched)
    if not search.count_only:
        bundle["link"] = page_links(base, state, svc.paging, total=len(matched), self_url=self_url)
    if search.unsupported:
        bundle["entry"].append(warnings_entry(search.unsupported))
    # The newest signed checkpoint at the time of reading: entries up to its seq are
    # anchored, and the patient can hold the log to it later.
    checkpoint = await svc.audit.latest_checkpoint()
    if checkpoint is not None:
        bundle["meta"]["extension"] = [checkpoint_extension(checkpoint)]
    return FhirJSONResponse(bundle)

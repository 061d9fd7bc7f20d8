"""Sources announce new data for a person, so the next read asks them at once.

The engagement index marks the source as holding data, and the cache treats its data for
the person as due for a refresh (kept, for use should the refresh fail). When a
subscription may be told of the person's changes, or the person asked to be told of news
(:mod:`gateway.collect.notices`), the gateway asks at once
(:meth:`gateway.access.notifier.Notifier.source_news`).

``POST /engagement/notifications`` with the source's own ``notify_token`` as bearer token
and a JSON body ``{"identifier": {"system": ..., "value": ...}}`` (the identity number in
the body, never the URL). Answers 202 with no body; anything else is an OperationOutcome.
"""

from __future__ import annotations

import hmac
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from fhir_profiles.identifiers import InvalidPersonIdentifier, canonical_identifier
from gateway.access.auth import bearer_token
from gateway.errors import BadRequest, Unauthorized
from gateway.services import Services

MAX_BODY = 4096


def _source_for(token: str, services: Services) -> str:
    """The source whose notify token this is (compared in constant time), or 401."""
    found = None
    for source in services.aggregator.sources:
        expected = source.config.notify_token
        if expected is not None and hmac.compare_digest(
            expected.get_secret_value().encode(), token.encode()
        ):
            found = source.id
    if found is None:
        raise Unauthorized("not a source's notification token")
    return found


def build_notification_router() -> APIRouter:
    router = APIRouter()

    @router.post("/engagement/notifications", status_code=202, summary="A source has new data")
    async def notify(request: Request) -> Response:
        services: Services = request.app.state.services
        source_id = _source_for(bearer_token(request), services)
        body = await request.body()
        if len(body) > MAX_BODY:
            raise BadRequest("the notification is too large")
        try:
            document: Any = orjson.loads(body)
            identifier = document["identifier"]
            person = canonical_identifier(str(identifier["system"]), str(identifier["value"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, InvalidPersonIdentifier) as exc:
            raise BadRequest("the body must name a person: {identifier: {system, value}}") from exc
        if person is None:
            raise BadRequest("unknown identifier system")
        patient_id = await services.persons.remember(person)
        await services.engagement.announce(patient_id, source_id)
        await services.cache.expire(patient_id, source_id)
        if services.notifier is not None:
            await services.notifier.source_news(patient_id)
        return Response(status_code=202)

    return router

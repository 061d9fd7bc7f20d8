"""How each HTTP request was answered, noted in one place for the request log and the
request metrics to read.

One plain ASGI middleware (Starlette's ``BaseHTTPMiddleware`` costs a task and a stream
per request) notes the method, the route template, the status and the time to the end of
the answer, and hands that to each of its readers in turn. It names the template, never
the concrete path or query: they may carry ids. Probes and scrapes
(:data:`~gateway.http.health.OPERATIONAL_PATHS`) are not noted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.http.health import OPERATIONAL_PATHS

#: The route of a request that matched none.
UNMATCHED = "<unmatched>"


@dataclass(frozen=True, slots=True)
class Answered:
    """One HTTP request as answered."""

    method: str
    route: str  #: the route template, or :data:`UNMATCHED`; never the concrete path
    status: int
    seconds: float  #: from the request's arrival here to the end of its answer


#: Reads each answered request (the request log, the metrics).
AnswerReader = Callable[[Answered], None]


class NoteAnswers:
    """ASGI middleware: note every HTTP request's route template, status and time to the
    end of the answer, and give it to ``readers`` in order."""

    def __init__(self, app: ASGIApp, readers: Sequence[AnswerReader]) -> None:
        self.app = app
        self.readers = tuple(readers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPERATIONAL_PATHS:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app fails before it starts an answer

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            route = getattr(scope.get("route"), "path", UNMATCHED)
            answered = Answered(scope["method"], route, status, time.perf_counter() - started)
            for read in self.readers:
                read(answered)

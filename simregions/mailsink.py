"""A small mail server on loopback that keeps what it receives: for the demo and tests.

Speaks just enough SMTP (RFC 5321: ``EHLO``/``HELO``, ``MAIL``, ``RCPT``, ``DATA``,
``RSET``, ``NOOP``, ``QUIT``) for Python's ``smtplib`` to deliver to it; every message is
kept, parsed, in :attr:`MailSink.received`. No TLS, no authentication, no relaying:
nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

_MAX_LINE = 4096
_MAX_MESSAGE = 1_000_000


@dataclass(frozen=True, slots=True)
class Received:
    """One message as it arrived."""

    sender: str
    recipients: tuple[str, ...]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        """The headers and the plain-text body, decoded."""
        body = self.message.get_body(("plain",))
        content = "" if body is None else str(body.get_content())
        headers = "\n".join(f"{k}: {v}" for k, v in self.message.items())
        return headers + "\n\n" + content


@dataclass
class MailSink:
    """The server: ``await start()``, then :attr:`port`; ``await close()``."""

    host: str = "127.0.0.1"
    #: Told of each message as it arrives (the demo prints and files it).
    on_message: Callable[[Received], None] | None = None
    received: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, port: int = 0) -> MailSink:
        self._server = await asyncio.start_server(self._session, self.host, port)
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def wait_for(self, count: int) -> list[Received]:
        """Wait until ``count`` messages have arrived (bound it with ``asyncio.timeout``)."""
        while len(self.received) < count:
            self.arrived.clear()
            await self.arrived.wait()
        return list(self.received)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ValueError):
            await self._converse(reader, writer)
        writer.close()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def say(line: str) -> None:
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        await say("220 samlad-mailsink ready")
        sender, recipients = "", list[str]()
        while line := (await reader.readuntil(b"\n"))[:_MAX_LINE].decode(errors="replace"):
            verb, _, rest = line.strip().partition(" ")
            match verb.upper():
                case "EHLO":
                    await say("250-samlad-mailsink\r\n250 8BITMIME")
                case "HELO" | "NOOP":
                    await say("250 ok")
                case "MAIL":
                    sender, recipients = rest.partition(":")[2].strip(" <>"), []
                    await say("250 ok")
                case "RCPT":
                    recipients.append(rest.partition(":")[2].strip(" <>"))
                    await say("250 ok")
                case "DATA":
                    await say("354 end with .")
                    self._keep(sender, recipients, await _data(reader))
                    await say("250 ok: queued")
                case "RSET":
                    sender, recipients = "", list[str]()
                    await say("250 ok")
                case "QUIT":
                    await say("221 bye")
                    return
                case _:
                    await say("502 not implemented")

    def _keep(self, sender: str, recipients: list[str], data: bytes) -> None:
        message = message_from_bytes(data, policy=policy.default)
        assert isinstance(message, EmailMessage)
        received = Received(sender, tuple(recipients), message)
        self.received.append(received)
        self.arrived.set()
        if self.on_message is not None:
            self.on_message(received)


async def _data(reader: asyncio.StreamReader) -> bytes:
    lines: list[bytes] = []
    size = 0
    while True:
        line = await reader.readuntil(b"\n")
        if line in (b".\r\n", b".\n"):
            return b"".join(lines)
        size += len(line)
        if size > _MAX_MESSAGE:
            raise ValueError("message too large")
        lines.append(line[1:] if line.startswith(b"..") else line)

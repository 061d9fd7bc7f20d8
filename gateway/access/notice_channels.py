"""What a notice message says and how it is sent: e-mail over SMTP, or a webhook.

A message carries no health data and no identity number: a fixed Swedish text per kind
("Ny information i din journal", "Din journal har lästs") and a link to the web app,
where the person logs in to see what it is about. The webhook (for an app's push
service) gets the same as JSON, ``type`` being ``news`` or ``access``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate

import httpx
import orjson

from gateway.collect.notices import ACCESS
from gateway.notice_config import NoticeConfig

_FOOTER = (
    "Meddelandet innehåller inga uppgifter ur din journal. Du får det för att du har "
    "valt att bli meddelad; du ändrar det under Meddelanden i appen."
)


@dataclass(frozen=True, slots=True)
class Message:
    """One message as it is sent: what it is about, a title, a text and the link."""

    type: str
    title: str
    text: str
    link: str

    def body(self) -> str:
        return f"{self.text}\n\n{self.link}\n\n{_FOOTER}\n"


def message_for(kind: str, link: str) -> Message:
    """The message of a notice kind (every kind of news says the same)."""
    if kind == ACCESS:
        return Message(
            "access",
            "Din journal har lästs",
            "Någon annan än du har läst uppgifter i din journal. Logga in och se vem i din logg:",
            link,
        )
    return Message(
        "news",
        "Ny information i din journal",
        "Det har kommit ny information i din journal. Logga in och läs den:",
        link,
    )


class DeliveryFailed(Exception):
    """A message did not reach its channel (to be tried again)."""


class Channels:
    """Sends messages by e-mail (when an SMTP server is configured) and webhook."""

    def __init__(self, config: NoticeConfig, client: httpx.AsyncClient) -> None:
        self._config = config
        self._client = client

    @property
    def email(self) -> bool:
        return self._config.smtp_host is not None

    async def send_email(self, to: str, message: Message) -> None:
        """Send by SMTP, in a thread (smtplib blocks)."""
        await asyncio.to_thread(self._smtp, to, message)

    def _smtp(self, to: str, message: Message) -> None:
        config = self._config
        if config.smtp_host is None:
            raise DeliveryFailed("no SMTP server is configured")
        mail = EmailMessage()
        mail["From"] = config.sender
        mail["To"] = to
        mail["Subject"] = message.title
        mail["Date"] = formatdate(localtime=False)
        # Letters, not the time and process digits of make_msgid: nothing in a message
        # should read like an identity number.
        mail["Message-ID"] = f"<{base64.b32encode(os.urandom(15)).decode().lower()}@samlad.invalid>"
        mail.set_content(message.body())
        try:
            with smtplib.SMTP(
                config.smtp_host, config.smtp_port, timeout=config.smtp_timeout_seconds
            ) as smtp:
                if config.smtp_starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if config.smtp_username is not None and config.smtp_password is not None:
                    smtp.login(config.smtp_username, config.smtp_password.get_secret_value())
                smtp.send_message(mail)
        except (smtplib.SMTPException, OSError, ValueError) as exc:
            raise DeliveryFailed(
                f"the mail server refused or failed ({type(exc).__name__})"
            ) from exc

    async def send_webhook(self, url: str, message: Message) -> None:
        """POST the message as JSON; anything but a 2xx answer is a failure."""
        body = {"type": message.type, "title": message.title, "text": message.text}
        body["link"] = message.link
        try:
            answer = await self._client.post(
                url,
                content=orjson.dumps(body),
                headers={"Content-Type": "application/json"},
                timeout=self._config.smtp_timeout_seconds,
            )
        except (httpx.HTTPError, OSError, ValueError, OverflowError) as exc:
            raise DeliveryFailed("the webhook could not be reached") from exc
        if not 200 <= answer.status_code < 300:
            raise DeliveryFailed(f"the webhook answered {answer.status_code}")

"""How people are told of news and of reads of their record (the ``[gateway.notices]``
table of the configuration): the mail server, the link a message carries, and the
outbox's pace.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class NoticeConfig(BaseModel):
    """The notice worker's settings (see docs/configuration.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The SMTP server messages are sent through; None: no e-mail is sent (an address
    #: cannot be set).
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    #: Upgrade the connection with STARTTLS before logging in and sending.
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    #: The sender of every message.
    sender: str = Field(default="Samlad <noreply@samlad.invalid>", max_length=200)
    #: The link every message carries; None: the web app at ``public_base_url``.
    link: str | None = Field(default=None, max_length=500)
    #: How often each worker looks for notices to send (seconds).
    poll_seconds: float = Field(default=5.0, gt=0, le=3600)
    #: Notices of one kind for one person are gathered this long into one message.
    batch_seconds: float = Field(default=300.0, ge=0, le=86400)
    #: A failed message is tried again after this, doubled per attempt (seconds).
    retry_seconds: float = Field(default=60.0, gt=0, le=86400)
    #: Attempts at one message before it is given up.
    max_attempts: int = Field(default=6, ge=1, le=100)

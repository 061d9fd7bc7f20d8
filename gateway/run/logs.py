"""How a gateway process logs: plain text lines, or one JSON object per line (``log_format``).

Logs go to standard error. Whatever the format, log calls never carry identity numbers,
concrete paths or query strings (see docs/operations.md); the JSON form adds only the
record's fixed fields and the structured ``extra`` fields its caller gave.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: Attributes every LogRecord has (anything else on a record came from ``extra``), and
#: uvicorn's copy of its message with terminal colours.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "color_message",
}

#: uvicorn's loggers carry handlers of their own (text); in JSON mode they go to the root.
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, any
    ``extra`` fields, and the exception's type and traceback if there is one."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                document[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            document["exception"] = record.exc_info[0].__name__
            document["traceback"] = self.formatException(record.exc_info)
        return orjson.dumps(document, default=str).decode()


def configure_logging(level: str, log_format: str = "text") -> None:
    """Log at ``level`` to standard error, as ``text`` or ``json`` (which replaces any
    earlier set-up)."""
    if log_format == "json":
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
        for name in _UVICORN_LOGGERS:
            logger = logging.getLogger(name)
            logger.handlers.clear()
            logger.propagate = True
    else:  # as before, if the process logs already (a test runner's handlers stay)
        logging.basicConfig(level=level.upper(), format=TEXT_FORMAT)
    # httpx logs full request URLs at INFO; upstream queries may carry identifiers.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    # authlib logs the tokens it issues (a citizen's holds their identity number) at DEBUG.
    logging.getLogger("authlib").setLevel(logging.WARNING)

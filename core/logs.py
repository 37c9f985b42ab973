"""Logging setup: text for a terminal, JSON lines for a log collector, never personal data.

Code logs with `logging.getLogger(__name__)` and lazy `%s` arguments; the device a
message is about is bound once per message (`bound_device`) rather than repeated in
every call, and each JSON line carries it as `device`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Each MQTT message and CoAP request is handled in its own task, and a task copies the
# context it starts with: a device bound in one never leaks into another.
_DEVICE: ContextVar[str | None] = ContextVar("foyer_log_device", default=None)

# Phone numbers are personal data (alerts/sms.py masks them itself): one that slips
# into a message anyway, E.164 (+33612345678) or French national (0612345678), keeps
# only its prefix and last 2 digits, like alerts.sms.mask. Epoch seconds start with
# a 1, device ids carry letters: both stay readable.
_PHONE = re.compile(r"(?<![\w.+-])(\+\d{2}|0\d)\d{5,12}(\d{2})(?!\w)")


@contextlib.contextmanager
def bound_device(device_id: str) -> Iterator[None]:
    """Every record logged inside names this device (`device` in JSON, `[id]` in text)."""
    token = _DEVICE.set(device_id)
    try:
        yield
    finally:
        _DEVICE.reset(token)


def scrub(text: str) -> str:
    return _PHONE.sub(r"\1******\2", text)


class _Context(logging.Filter):
    """Adds the bound device to each record; runs on the handler, so on every logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.device = _DEVICE.get()
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = scrub(super().format(record))
        device = getattr(record, "device", None)
        return f"{line} [{device}]" if device else line


class JsonFormatter(logging.Formatter):
    """One object per line: time (UTC, ISO 8601), level, logger, message, device, and
    the traceback as `exc` when there is one. Only these keys: a record's `args` or
    `extra` are never dumped wholesale, so nothing personal rides along unseen."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, str] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        device = getattr(record, "device", None)
        if device:
            out["device"] = device
        if record.exc_info:
            out["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False)


def configure(level: int, fmt: str = "text") -> None:
    """Replace the root handlers: one stream handler on stderr in the chosen format."""
    handler = logging.StreamHandler()
    handler.addFilter(_Context())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)

"""Log lines: text or one JSON object each, the bound device in both, no phone number."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from core import logs

PHONE = "+33612345678"


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger of its own with core.logs' handler setup, writing to a string."""
    out = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level  # pytest's own capture handler among them
    yield logging.getLogger("foyer.test_logs"), out
    root.handlers[:] = handlers
    root.setLevel(level)


def configured(fmt: str, out: io.StringIO) -> None:
    logs.configure(logging.INFO, fmt)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(out)


def test_json_lines_carry_time_level_logger_message_and_bound_device(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = capture
    configured("json", out)
    with logs.bound_device("m-0042"):
        logger.warning("refused %s message: %s", "mqtt", "bad pack")
    logger.info("no device here")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["time"].endswith("+00:00")
    assert {k: first[k] for k in ("level", "logger", "message", "device")} == {
        "level": "WARNING",
        "logger": "foyer.test_logs",
        "message": "refused mqtt message: bad pack",
        "device": "m-0042",
    }
    assert "device" not in second


def test_json_traceback_is_one_line_of_the_object(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = capture
    configured("json", out)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("task crashed")
    [line] = out.getvalue().splitlines()
    assert "RuntimeError: boom" in json.loads(line)["exc"]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_phone_numbers_never_reach_the_log(
    capture: tuple[logging.Logger, io.StringIO], fmt: str
) -> None:
    logger, out = capture
    configured(fmt, out)
    logger.warning("sms to %s, national %s, failed", PHONE, "0612345678")
    text = out.getvalue()
    assert PHONE not in text and "0612345678" not in text
    assert "+33******78" in text and "06******78" in text


def test_extra_fields_are_not_dumped_into_json(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = capture
    configured("json", out)
    logger.warning("contact updated", extra={"contact_name": "Jeanne Martin"})
    assert "Jeanne" not in out.getvalue()


def test_text_lines_name_the_bound_device(capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = capture
    configured("text", out)
    with logs.bound_device("b-7"):
        logger.warning("lift refused")
    assert out.getvalue().rstrip().endswith("WARNING foyer.test_logs: lift refused [b-7]")


def test_ids_and_epoch_seconds_are_not_taken_for_phone_numbers() -> None:
    line = "device m-0001234567 at 1700000000 batch 12345678"
    assert logs.scrub(line) == line

"""Log lines: JSON for machines, one readable line per entry for people at a terminal, masked alike."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys

import orjson
import pytest

from leadmaster.common.logs import JsonFormatter, PrettyFormatter, pretty_line, resolve_log_format


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_format_defaults_to_pretty_on_a_terminal_and_json_elsewhere() -> None:
    assert resolve_log_format(None, _Tty()) == "pretty"
    assert resolve_log_format("", _Tty()) == "pretty"
    assert resolve_log_format(None, io.StringIO()) == "json"
    assert resolve_log_format("json", _Tty()) == "json"
    assert resolve_log_format("pretty", io.StringIO()) == "pretty"
    with pytest.raises(ValueError, match=r"^LEADMASTER_LOG_FORMAT='xml' is invalid: use json or pretty$"):
        resolve_log_format("xml", _Tty())


def test_a_real_pty_is_a_terminal() -> None:
    master, slave = os.openpty()
    try:
        with os.fdopen(slave, "w", closefd=False) as stream:
            assert resolve_log_format(None, stream) == "pretty"
    finally:
        os.close(master)
        os.close(slave)


def _record(msg: str, exc: bool = False, **fields: object) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            exc_info = sys.exc_info()
    record = logging.LogRecord("leadmaster.x", logging.WARNING, __file__, 1, msg, None, exc_info)
    record.created, record.msecs = 1_700_000_000.25, 250.0
    record.fields = fields  # type: ignore[attr-defined]
    record.request_id = "rid-1"  # type: ignore[attr-defined]
    return record


def test_pretty_line_has_time_level_service_message_and_fields() -> None:
    record = _record("sent to 5491123456789", instance_id="admin", to="5491123456789", reason=None,
                     note="two words", n=3, ok=True)
    line = PrettyFormatter("session-manager").format(record)
    assert line == ("22:13:20.250 WARNING session-manager sent to ***6789  instance_id=admin to=***6789 "
                    'note="two words" n=3 ok=true request_id=rid-1')
    # The same entry as the JSON line, drawn differently: nothing more, nothing less (None fields aside).
    entry = orjson.loads(JsonFormatter("session-manager").format(record))
    assert pretty_line(entry) == line


def test_pretty_exception_follows_on_indented_lines() -> None:
    line = PrettyFormatter("central-hub").format(_record("unhandled error", exc=True))
    first, *rest = line.splitlines()
    assert first.endswith("central-hub     unhandled error  request_id=rid-1")
    assert rest[0] == "    Traceback (most recent call last):" and rest[-1] == "    RuntimeError: boom"


@pytest.mark.parametrize(("choice", "pattern"), [
    ("json", r'^\{"ts":"[0-9T:.-]+Z","level":"warning","service":"central-hub","logger":"x","msg":"hi","n":1\}$'),
    ("pretty", r"^\d\d:\d\d:\d\d\.\d{3} WARNING central-hub     hi  n=1$"),
])
def test_configure_logging_writes_the_chosen_format(choice: str, pattern: str) -> None:
    # In a child process: configure_logging changes process-wide logging state.
    code = ("import logging; from leadmaster.common import logs; logs.configure_logging('central-hub', 'INFO', "
            f"{choice!r}); logs.log(logging.getLogger('x'), logging.WARNING, 'hi', n=1)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert re.match(pattern, proc.stderr.strip()), proc.stderr

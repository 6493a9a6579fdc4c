"""Both services name the bad variable and its value, on one line, for every setting that can be wrong."""

from __future__ import annotations

import os
import subprocess
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from leadmaster.central_hub.config import Settings as HubSettings
from leadmaster.common.settings import describe_error, variable_name
from leadmaster.session_manager.config import Settings as SmSettings
from tests.support.processes import BIN

# A value each field type refuses; str and Path fields accept anything and are skipped.
_BAD = {int: "seven", float: "fast", bool: "maybe"}


def _bad_value(annotation: Any) -> str | None:
    if typing.get_origin(annotation) is typing.Literal:
        return "no-such-choice"
    return _BAD.get(annotation)


def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("SESSION_MANAGER_", "CENTRAL_HUB_", "SANDBOX_")) or name == "PORT":
            monkeypatch.delenv(name)


CASES = [
    (cls, name, bad)
    for cls in (SmSettings, HubSettings)
    for name, field in cls.model_fields.items()
    if (bad := _bad_value(field.annotation)) is not None
]


@pytest.mark.parametrize(("cls", "field", "bad"), CASES, ids=[f"{c.__module__.split('.')[1]}.{f}" for c, f, _ in CASES])
def test_every_typed_setting_names_its_variable_and_value(
    cls: type[BaseSettings], field: str, bad: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clean_env(monkeypatch)
    monkeypatch.setenv("SESSION_MANAGER_BASE_URL", "http://127.0.0.1:3001")
    var = variable_name(cls, field)
    monkeypatch.setenv(var, bad)  # if `var` were not the variable really read, nothing would fail below
    with pytest.raises(ValidationError) as info:
        cls()
    line = describe_error(info.value, cls)
    assert line.startswith(f"{var}={bad!r} is invalid: "), line
    assert "\n" not in line


def test_every_error_is_on_the_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_env(monkeypatch)
    monkeypatch.setenv("SESSION_MANAGER_ENGINE", "x")
    monkeypatch.setenv("PORT", "99999")
    monkeypatch.setenv("SESSION_MANAGER_DEFAULT_INSTANCE", "a b")
    with pytest.raises(ValidationError) as info:
        SmSettings()
    assert describe_error(info.value, SmSettings).split("; ") == [
        "PORT='99999' is invalid: Input should be less than or equal to 65535",
        "SESSION_MANAGER_ENGINE='x' is invalid: Input should be 'whatsmeow' or 'sandbox'",
        "SESSION_MANAGER_DEFAULT_INSTANCE='a b' must match ^[A-Za-z0-9_-]{1,64}$",
    ]


@pytest.mark.parametrize(("env", "line"), [
    ({"SESSION_MANAGER_ENGINE": "x"},
     "session-manager: SESSION_MANAGER_ENGINE='x' is invalid: Input should be 'whatsmeow' or 'sandbox'"),
    ({"SANDBOX_QR_COUNT": "0"},
     "session-manager: SANDBOX_QR_COUNT='0' is invalid: Input should be greater than or equal to 1"),
    ({"SESSION_MANAGER_HOST": "0.0.0.0"},
     "session-manager: SESSION_MANAGER_HOST='0.0.0.0' is not a loopback address and SESSION_MANAGER_API_KEY is not"
     " set: refusing to expose WhatsApp sessions without an API key. Set SESSION_MANAGER_API_KEY or bind to"
     " 127.0.0.1."),
])
def test_session_manager_exits_2_with_one_line(env: dict[str, str], line: str, tmp_path: Path) -> None:
    proc = subprocess.run([str(BIN / "session-manager")], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "SESSION_MANAGER_DATA_DIR": str(tmp_path), **env})
    assert (proc.returncode, proc.stderr.splitlines(), proc.stdout) == (2, [line], "")


def test_central_hub_exits_2_with_one_line(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "SESSION_MANAGER_BASE_URL": "http://127.0.0.1:3001",
           "CENTRAL_HUB_DATA_DIR": str(tmp_path), "SESSION_MANAGER_API": "node"}
    proc = subprocess.run([str(BIN / "central-hub")], capture_output=True, text=True, timeout=60, env=env)
    assert (proc.returncode, proc.stderr.splitlines()) == (2, [
        "central-hub: SESSION_MANAGER_API='node' is invalid: Input should be 'instances' or 'single-admin'"])

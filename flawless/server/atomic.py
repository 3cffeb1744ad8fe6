"""Write a file whole or not at all: through a temporary file in its directory and a rename."""

from __future__ import annotations

import os
import tempfile
from typing import Optional


def write_atomically(path: str, data: bytes, mode: Optional[int] = None) -> None:
    """Replace ``path`` with ``data``, flushed to disk first; readers see the old file or the
    new one, never a part. The file keeps its permission bits (``mode`` for a new one:
    0o644 by default)."""
    directory = os.path.dirname(path) or "."
    if mode is None:
        try:
            mode = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o644
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".flawless-", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    directory_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(directory_fd)  # the rename itself survives a crash
    finally:
        os.close(directory_fd)

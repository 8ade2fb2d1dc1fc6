"""An exclusive lock on a run folder for the whole of a command: two runs never write one folder at once.

The lock is an `flock` on `DIR/.lock`, which also records the holder's pid and command line. The kernel
releases it when the holder exits in any way (kill -9 included), so a lock left by a dead process is simply
taken over by the next run.
"""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = ".lock"


class RunLocked(RuntimeError):
    """The run folder is held by another live process."""


@contextmanager
def run_lock(folder: str | Path) -> Iterator[None]:
    """Hold the lock of `folder` (created if needed) for the body of the `with`; raise RunLocked if another
    process holds it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "an unknown process"
            raise RunLocked(
                f"{folder} is in use by {holder}; wait for it to finish or stop it, or choose another folder"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} ({' '.join(sys.argv)[:200]})\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock

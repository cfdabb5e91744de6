"""One run per working directory, said plainly.

Two Snakemake runs started in the same directory at nearly the same time collide: the
second sees the first one's running jobs as incomplete files (``IncompleteFilesException``,
advice: ``--rerun-incomplete``), and following that advice meets the first run's lock
(``LockException``). :func:`hold_run_lock`, called by ``common.smk`` whenever Snakemake
reads the workflow, takes an advisory ``flock`` on ``.snakemake/swift-study.lock`` for the
life of the process, with its pid and command line inside; a second process finds it held
and stops at once naming the process that holds the directory. The kernel drops the lock
when that process ends (also when it is killed), so it never goes stale.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from pathlib import Path
from typing import IO, Sequence

from .errors import SwiftStudyError

LOCK_NAME = "swift-study.lock"
_HELD: dict[str, IO[str]] = {}


class BusyError(SwiftStudyError):
    """Another live process runs the workflow in this directory."""


def hold_run_lock(snakemake_dir: str | os.PathLike = ".snakemake", argv: Sequence[str] | None = None) -> Path:
    """Hold the run lock of ``snakemake_dir`` until this process ends (again: no-op).

    Raises :class:`BusyError` naming the holder's pid, start time and command line when
    another live process holds it.
    """
    path = Path(snakemake_dir) / LOCK_NAME
    key = str(path.resolve())
    if key in _HELD:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+", encoding="utf-8")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "a process that wrote nothing yet"
        fh.close()
        raise BusyError(f"another run holds this directory ({Path.cwd()}): {holder}. Wait for it to finish "
                        "(or stop that process); do not add --rerun-incomplete or --unlock while it runs: "
                        "its jobs are not incomplete, they are running") from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}, command: "
             f"{' '.join(argv if argv is not None else sys.argv)}\n")
    fh.flush()
    _HELD[key] = fh  # kept open: closing the file would drop the lock
    return path

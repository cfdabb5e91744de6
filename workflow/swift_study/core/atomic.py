"""Atomic file writes: every output is written to a temporary sibling and renamed into
place, so a killed job never leaves a half-written file (the one owner of this logic)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable

if TYPE_CHECKING:
    from .errors import DataError


def atomic_write_bytes(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(fh)`` on a temporary binary file next to ``path``, then rename it to
    ``path`` (mode 0644). On any error the temporary file is removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs are ordinary readable files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    data = text.encode("utf-8")
    atomic_write_bytes(path, lambda fh: fh.write(data))


_WRITE_FAILED = ("no space left", "file write failed", "disk quota exceeded")


def no_space_error(exc: BaseException, paths: list[str | os.PathLike]) -> "DataError | None":
    """The clear error for ``exc`` when it comes from a full filesystem (``ENOSPC``
    anywhere in its chain, or a library's bare "write failed" while one of ``paths``' file
    systems has under 64 MiB free), naming the path being written; else ``None``."""
    import errno
    import shutil

    from .errors import DataError

    chain, e = [], exc
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__
    enospc = [e for e in chain if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)]
    texts = " ".join(str(e).lower() for e in chain)

    def free(p: Path) -> int | None:
        while not p.exists() and p != p.parent:
            p = p.parent
        try:
            return shutil.disk_usage(p).free
        except OSError:
            return None

    fulls = [(Path(p), free(Path(p))) for p in paths]
    fulls = [(p, f) for p, f in fulls if f is not None and f < 64 << 20]
    if not enospc and not (fulls and any(t in texts for t in _WRITE_FAILED)):
        return None
    named = enospc[0].filename if enospc and enospc[0].filename else None
    where = Path(named) if named else (fulls[0][0] if fulls else Path(paths[0]) if paths else Path("."))
    left = free(where)
    return DataError(f"no space left on device writing {where}" + (f" ({left} bytes free there)" if left is not None
                                                                    else "")
                     + "; the job's partial outputs were removed: free space (or move `results:`) and rerun "
                       "the same command, it resumes from the last complete checkpoint")

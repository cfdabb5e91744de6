"""Checksum manifests: sha256 and size of every file of an artifact directory.

A manifest (``checksums.sha256``, the ``sha256sum`` format with the size appended as a
comment-free second file ``checksums.json``) is written after the files it covers;
:func:`verify_manifest` recomputes it and stops with the file, the expected and the
found checksum and the command that rebuilds the artifact.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .atomic import atomic_write_text
from .errors import DataError

MANIFEST = "checksums.sha256"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            b = fh.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def write_manifest(root: str | Path) -> Path:
    """Write ``root/checksums.sha256`` over every file below ``root`` (``sha256  size  path``)."""
    root = Path(root)
    lines = [f"{sha256_file(p)}  {p.stat().st_size}  {p.relative_to(root).as_posix()}" for p in _files(root)]
    return atomic_write_text(root / MANIFEST, "\n".join(lines) + "\n") or root / MANIFEST


def read_manifest(root: str | Path) -> dict[str, tuple[str, int]] | None:
    """``{relative path: (sha256, size)}`` of ``root``'s manifest, or ``None`` without one."""
    path = Path(root) / MANIFEST
    if not path.exists():
        return None
    out = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("  ", 2)
        if len(parts) != 3:
            raise DataError(f"{path}:{n}: not a 'sha256  size  path' line")
        out[parts[2]] = (parts[0], int(parts[1]))
    return out


def verify_manifest(root: str | Path, rebuild: str, names: list[str] | None = None) -> bool:
    """Check ``root``'s files against its manifest (only ``names`` if given).

    Returns ``False`` when ``root`` has no manifest; raises :class:`DataError` naming the
    file, the expected and found checksum and ``rebuild`` on a missing or changed file.
    """
    root = Path(root)
    manifest = read_manifest(root)
    if manifest is None:
        return False
    for rel, (digest, size) in manifest.items():
        if names is not None and rel not in names:
            continue
        p = root / rel
        if not p.exists():
            raise DataError(f"{p}: missing (listed in {root / MANIFEST}); rebuild it with: {rebuild}")
        found_size = p.stat().st_size
        found = sha256_file(p) if found_size == size else None
        if found != digest:
            raise DataError(f"{p}: checksum mismatch: expected sha256 {digest} ({size} bytes), found "
                            f"{found or '-'} ({found_size} bytes); the file is corrupted or was changed. "
                            f"Rebuild it with: {rebuild}")
    return True


def manifest_json(root: str | Path) -> str:
    """The manifest as JSON (for reports)."""
    return json.dumps(read_manifest(root), indent=1)

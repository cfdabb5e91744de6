"""Checksum manifests: sha256 and size of every file of an artifact that later jobs trust.

A manifest (``checksums.sha256`` in the artifact's directory) has one line per file,
``sha256  size  relative/path``, after optional ``# key: value`` header lines naming the
rule that wrote it (``# rule:``) and the Snakemake output that rebuilds it
(``# target:``). It is written atomically after the files it covers: over every file
below the directory (a model or model state), or over the ``files`` one job wrote into a
shared directory (a shard's feature stores, a study's score files). A subdirectory with
its own manifest (the model states inside a warm-up directory) is left to that manifest.

:func:`verify_manifest` recomputes it and stops with the file, the expected and the found
checksum and the command that rebuilds the artifact; :func:`check_manifest` returns
every problem instead (``swift-study verify``). Scripts run by
:func:`swift_study.pipeline.runner.run` record their rule and first output automatically
(:func:`set_producer`), so library writers need not know which rule called them.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from .atomic import atomic_write_text
from .errors import DataError

MANIFEST = "checksums.sha256"
_PRODUCER: dict[str, str] = {}
_VERIFIED: set[tuple[str, int, int, str]] = set()  # (path, size, mtime_ns, sha256) already checked


def set_producer(rule: str | None, target: str | None) -> None:
    """Record the running rule and the output that rebuilds what it writes; every
    manifest written afterwards in this process carries them (``None``: forget them)."""
    _PRODUCER.clear()
    if rule:
        _PRODUCER["rule"] = str(rule)
    if target:
        _PRODUCER["target"] = str(target)


def rebuild_command(target: str | None, rule: str | None = None, extra: Sequence[str] = ()) -> str:
    """The Snakemake command that rebuilds ``target`` (an output file or directory, else
    ``rule``) and everything downstream of it; ``extra`` are the run's own arguments
    (``--configfile ...``)."""
    what = target or rule or "<rule>"
    return " ".join(["snakemake", "--cores", "all", *extra, "--forcerun", what])


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
    """Every file below ``root`` but hidden ones, manifests and subdirectories with their own."""
    owned = [p.parent for p in root.rglob(MANIFEST) if p.parent != root]
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST
                  and not any(part.startswith(".") for part in p.relative_to(root).parts)
                  and not any(o in p.parents for o in owned))


def write_manifest(root: str | Path, files: Iterable[str | Path] | None = None, rule: str | None = None,
                   target: str | None = None) -> Path:
    """Write ``root/checksums.sha256`` over ``files`` (paths of files below ``root``, as
    given to ``open``; default: every
    file below it, see the module docstring), after the files are complete. ``rule`` and
    ``target`` default to the running rule's (:func:`set_producer`). Returns its path."""
    root = Path(root)
    paths = _files(root) if files is None else sorted(Path(f) for f in files)
    outside = [p for p in paths if Path(os.path.relpath(p, root)).parts[:1] == ("..",)]
    if outside:
        raise ValueError(f"write_manifest: {outside[0]} is not below {root}")
    header = {"rule": rule or _PRODUCER.get("rule"), "target": target or _PRODUCER.get("target")}
    lines = [f"# {k}: {v}" for k, v in header.items() if v]
    for p in paths:
        rel = Path(os.path.relpath(p, root)).as_posix()
        lines.append(f"{sha256_file(p)}  {p.stat().st_size}  {rel}")
    atomic_write_text(root / MANIFEST, "\n".join(lines) + "\n")
    return root / MANIFEST


def read_header(root: str | Path) -> dict[str, str]:
    """The ``# key: value`` header of ``root``'s manifest (``rule``, ``target``), ``{}`` without one."""
    path = Path(root) / MANIFEST
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# ") and ": " in line:
            k, v = line[2:].split(": ", 1)
            out[k.strip()] = v.strip()
    return out


def read_manifest(root: str | Path) -> dict[str, tuple[str, int]] | None:
    """``{relative path: (sha256, size)}`` of ``root``'s manifest, or ``None`` without one."""
    path = Path(root) / MANIFEST
    if not path.exists():
        return None
    out = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("  ", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            raise DataError(f"{path}:{n}: not a 'sha256  size  path' line")
        out[parts[2]] = (parts[0], int(parts[1]))
    return out


@dataclass(frozen=True)
class Problem:
    """One file that fails its manifest: ``kind`` is ``missing`` or ``corrupted``."""

    path: Path
    kind: str
    detail: str
    manifest: Path


def check_manifest(root: str | Path, names: Sequence[str] | None = None) -> list[Problem] | None:
    """Every file of ``root``'s manifest (only ``names`` if given) that is missing or
    differs from its recorded size and sha256; ``None`` when ``root`` has no manifest."""
    root = Path(root)
    manifest = read_manifest(root)
    if manifest is None:
        return None
    problems = []
    for rel, (digest, size) in manifest.items():
        if names is not None and rel not in names:
            continue
        p = root / rel
        if not p.exists():
            problems.append(Problem(p, "missing", f"missing (listed in {root / MANIFEST})", root / MANIFEST))
            continue
        st = p.stat()
        key = (str(p.resolve()), st.st_size, st.st_mtime_ns, digest)
        if key in _VERIFIED:
            continue
        found = sha256_file(p) if st.st_size == size else None
        if found != digest:
            problems.append(Problem(p, "corrupted", f"checksum mismatch: expected sha256 {digest} ({size} bytes), "
                                                    f"found {found or '-'} ({st.st_size} bytes)", root / MANIFEST))
        else:
            _VERIFIED.add(key)
    return problems


def load_verified(cache: str | Path) -> int:
    """Add the files an earlier process verified (``cache``, written by
    :func:`save_verified`) to this process's verified set, so that a file with the same
    size, modification time and recorded sha256 is not hashed again; returns how many.
    A missing or unreadable cache adds nothing (everything is hashed)."""
    try:
        rows = json.loads(Path(cache).read_text(encoding="utf-8"))
        keys = {(str(p), int(size), int(mtime), str(digest)) for p, size, mtime, digest in rows}
    except (OSError, ValueError, TypeError):
        return 0
    _VERIFIED.update(keys)
    return len(keys)


def save_verified(cache: str | Path) -> int:
    """Write the verified files that are still as they were verified (same size and
    modification time) to ``cache``, atomically; returns how many."""
    rows = []
    for key in sorted(_VERIFIED):
        try:
            st = os.stat(key[0])
        except OSError:
            continue
        if (st.st_size, st.st_mtime_ns) == key[1:3]:
            rows.append(list(key))
    atomic_write_text(cache, json.dumps(rows))
    return len(rows)


def verify_manifest(root: str | Path, rebuild: str | None = None, names: Sequence[str] | None = None) -> bool:
    """Check ``root``'s files against its manifest (only ``names`` if given).

    Returns ``False`` when ``root`` has no manifest; raises :class:`DataError` naming the
    file, the expected and found checksum and how to rebuild it (``rebuild``, else the
    command made from the manifest's ``# target:``) on a missing or changed file.
    """
    problems = check_manifest(root, names)
    if problems is None:
        return False
    if problems:
        head = read_header(root)
        fix = rebuild or (rebuild_command(head.get("target"), head.get("rule"))
                          + "  (add your run's --configfile; `swift-study verify` lists everything to repair)")
        p = problems[0]
        what = "the file is corrupted or was changed" if p.kind == "corrupted" else "the file was deleted"
        raise DataError(f"{p.path}: {p.detail}; {what}. Rebuild it with: {fix}")
    return True


def verify_files(paths: Iterable[str | Path]) -> int:
    """Verify each file against the manifest of its directory, where one lists it (a
    store, a score file); returns how many were checked. Raises like :func:`verify_manifest`."""
    by_dir: dict[Path, list[str]] = {}
    for p in map(Path, paths):
        by_dir.setdefault(p.parent, []).append(p.name)
    checked = 0
    for root, names in by_dir.items():
        listed = read_manifest(root)
        if listed is None:
            continue
        names = [n for n in names if n in listed]
        verify_manifest(root, names=names)
        checked += len(names)
    return checked


def manifest_json(root: str | Path) -> str:
    """The manifest as JSON (for reports)."""
    return json.dumps(read_manifest(root), indent=1)

"""``swift-study verify``: is every artifact of a results directory what its producer wrote,
and up to date with that producer's inputs?

Two sources, each the owner of its half: the checksum manifests (:mod:`swift_study.core.manifest`)
find files that are missing or whose bytes changed (which Snakemake cannot see: a
truncated file keeps its timestamp), and Snakemake's own summary (``snakemake --summary``)
finds outputs that are missing or stale against their rule's inputs, parameters or code.
Each finding comes with the ``snakemake --forcerun`` command that rebuilds it.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..core.manifest import MANIFEST, check_manifest, read_header, rebuild_command
from ..core.offline import offline_env

SUMMARY_HEADER = "output_file\tdate\trule\tlog-file(s)\tstatus\tplan"


@dataclass(frozen=True)
class Finding:
    """One artifact that is not what it should be; ``target`` is what ``--forcerun`` takes."""

    path: str
    kind: str  # missing, corrupted, stale
    detail: str
    target: str


def manifest_findings(results: str | Path, workdir: str | Path | None = None) -> list[Finding]:
    """Every file below ``results`` that fails the manifest of its directory; paths relative
    to the run's ``workdir`` (as Snakemake names them) when given."""
    from ..core.errors import DataError

    results = Path(results)
    out = []
    for m in sorted(results.rglob(MANIFEST)) if results.exists() else []:
        root = m.parent
        if any(part.startswith(".") for part in root.relative_to(results).parts):
            continue  # a temporary directory being written
        head = read_header(root)
        target = head.get("target") or head.get("rule") or str(root)
        try:
            problems = check_manifest(root) or []
        except DataError as exc:
            out.append(Finding(_rel(m, workdir), "corrupted", str(exc), target))
            continue
        out += [Finding(_rel(p.path, workdir), p.kind, p.detail, target) for p in problems]
    return out


def _rel(path: Path, workdir: str | Path | None) -> str:
    if workdir is None:
        return str(path)
    try:
        return str(Path(path).resolve().relative_to(Path(workdir).resolve()))
    except ValueError:
        return str(path)


def parse_summary(text: str) -> list[tuple[str, str, str, str]]:
    """``(output, rule, status, plan)`` of each row of ``snakemake --summary`` output."""
    rows, seen_header = [], False
    for line in text.splitlines():
        if line.strip() == SUMMARY_HEADER:
            seen_header = True
            continue
        parts = line.split("\t")
        if seen_header and len(parts) == 6:
            rows.append((parts[0], parts[2], parts[4], parts[5]))
    return rows


def summary_findings(rows: Sequence[tuple[str, str, str, str]]) -> list[Finding]:
    """The rows Snakemake would not leave alone: missing, stale, or to be updated."""
    out = []
    for path, rule, status, plan in rows:
        if status in ("ok", "removed temp file") and plan == "no update":
            continue  # up to date (a temp() output is removed by design once its consumers ran)
        kind = "missing" if status == "missing" else "stale"
        detail = status if status != "ok" else "an input upstream is missing or stale"
        out.append(Finding(path, kind, f"{detail} (rule {rule})", path))
    return out


def snakemake_summary(snakefile: str | Path, args: Sequence[str]) -> tuple[int, str, str]:
    """Run ``snakemake --summary`` with the run's ``args``: ``(returncode, stdout, stderr)``."""
    cmd = [sys.executable, "-m", "snakemake", *([] if "-s" in args else ["-s", str(snakefile)]), "--summary",
           "--cores", "1", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=offline_env())
    return proc.returncode, proc.stdout, proc.stderr


def merge_findings(by_manifest: Sequence[Finding], by_summary: Sequence[Finding]) -> list[Finding]:
    """Both lists, one finding per path (the manifest's, which knows the bytes, first),
    corrupted before missing before stale."""
    merged: dict[str, Finding] = {}
    for f in [*by_manifest, *by_summary]:
        merged.setdefault(str(Path(f.path)), f)
    order = {"corrupted": 0, "missing": 1, "stale": 2}
    return sorted(merged.values(), key=lambda f: (order[f.kind], f.path))


def report(findings: Sequence[Finding], run_args: Sequence[str]) -> str:
    """The text ``swift-study verify`` prints: each finding with its repair command, then
    one command that repairs them all."""
    if not findings:
        return "ok: every artifact matches its checksums and is up to date with its inputs"
    lines = []
    for f in findings:
        lines.append(f"{f.kind}: {f.path}: {f.detail}\n  repair: {rebuild_command(f.target, extra=run_args)}")
    targets = list(dict.fromkeys(f.target for f in findings if f.kind != "stale")) or \
        list(dict.fromkeys(f.target for f in findings))
    lines.append(f"{len(findings)} problem(s); repair all with:\n  "
                 + " ".join(["snakemake", "--cores", "all", *run_args, "--forcerun", *targets]))
    return "\n".join(lines)

"""``swift-study verify``: is every artifact of a results directory what its producer wrote,
and up to date with that producer's inputs?

Two sources, each the owner of its half: the checksum manifests (:mod:`swift_study.core.manifest`)
find files that are missing or whose bytes changed (which Snakemake cannot see: a
truncated file keeps its timestamp), and Snakemake's own summary (``snakemake --summary``)
finds outputs that are missing or stale against their rule's inputs, parameters or code.
Each finding comes with the ``snakemake --forcerun`` command that rebuilds it.

Every run checks the manifests too, before it schedules anything
(:func:`check_results_at_start`, called by ``common.smk``): a damaged artifact stops the
run naming the file and its repair, where Snakemake alone would say "Nothing to be done".
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, MutableMapping, Sequence

from ..core.manifest import MANIFEST, check_manifest, load_verified, read_header, rebuild_command, save_verified
from ..core.offline import offline_env

SUMMARY_HEADER = "output_file\tdate\trule\tlog-file(s)\tstatus\tplan"


@dataclass(frozen=True)
class Finding:
    """One artifact that is not what it should be; ``target`` is what ``--forcerun`` takes."""

    path: str
    kind: str  # missing, corrupted, stale
    detail: str
    target: str
    rule: str = ""  # the rule that wrote it, where its manifest says


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
        target, rule = head.get("target") or head.get("rule") or str(root), head.get("rule", "")
        try:
            problems = check_manifest(root) or []
        except DataError as exc:
            out.append(Finding(_rel(m, workdir), "corrupted", str(exc), target, rule))
            continue
        out += [Finding(_rel(p.path, workdir), p.kind, p.detail, target, rule) for p in problems]
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


# ----------------------------------------------------------------------------- at every run's start

#: The config key that switches the start-up check off (a run-time switch, not a
#: parameter of any result: :func:`check_results_at_start` takes it out of the config).
SWITCH = "verify_results"
#: Where a run keeps the files it verified (path, size, mtime, sha256), in the working directory.
VERIFIED_CACHE = Path(".snakemake") / "swift-study-verified.json"
#: Snakemake options (as its argument parser names them) under which no job is
#: scheduled: nothing to protect, and ``swift-study verify`` runs ``--summary``.
NO_JOB_OPTIONS: tuple[str, ...] = (
    "unlock", "summary", "detailed_summary", "list_rules", "list_target_rules", "list_changes",
    "list_input_changes", "list_params_changes", "list_untracked", "list_conda_envs", "lint", "dag", "rulegraph",
    "filegraph", "d3dag", "cleanup_metadata", "cleanup_shadow", "touch", "delete_all_output", "delete_temp_output",
    "archive", "containerize", "generate_unit_tests", "export_cwl", "report", "conda_create_envs_only",
    "conda_cleanup_envs", "container_cleanup_images")


@dataclass(frozen=True)
class RunArgs:
    """What the start-up check needs from the run's Snakemake command line."""

    schedules: bool  # False under an option that runs no job (--unlock, --summary, ...)
    forceall: bool
    forced: frozenset[str]  # --forcerun's rules and files: what this run rebuilds anyway
    repeat: tuple[str, ...]  # the arguments a repair command repeats (-s, --directory, --configfile, --config)


def parse_run_args(argv: Sequence[str]) -> RunArgs:
    """Read ``argv`` (Snakemake's, without the program) with Snakemake's own argument
    parser; arguments it cannot read count as a plain run with nothing forced."""
    from snakemake.cli import get_argument_parser

    def refuse(message: str) -> None:
        raise ValueError(message)

    parser = get_argument_parser()
    parser.error = refuse  # type: ignore[method-assign] # never print usage or exit from the workflow
    try:
        args, _ = parser.parse_known_args(list(argv))
    except (ValueError, SystemExit):
        return RunArgs(True, False, frozenset(), ())
    repeat: list[str] = []
    for flag, values in (("-s", [args.snakefile] if args.snakefile else []),
                         ("--directory", [args.directory] if args.directory else []),
                         ("--configfile", args.configfile or []), ("--config", args.config or [])):
        repeat += [flag, *(shlex.quote(str(v)) for v in values)] if values else []
    return RunArgs(schedules=not any(getattr(args, name, None) for name in NO_JOB_OPTIONS),
                   forceall=bool(args.forceall), forced=frozenset(map(str, args.forcerun or ())),
                   repeat=tuple(repeat))


def _same_path(a: str, b: str) -> bool:
    return os.path.normpath(os.path.abspath(a)) == os.path.normpath(os.path.abspath(b))


def rebuilt_by(finding: Finding, forced: frozenset[str]) -> bool:
    """Does ``--forcerun`` name the rule that wrote ``finding`` or the output that rebuilds
    it? (Then this run replaces it, and the repair itself is not refused.)"""
    return any(f == finding.rule or _same_path(f, finding.target) for f in forced)


def seen_by_snakemake(finding: Finding) -> bool:
    """Is ``finding`` a missing file that Snakemake itself rebuilds? A deleted output is
    (the user may delete one to have it rebuilt); a file deleted inside a directory output
    (a model state's weights) is not, nor is a changed one (its timestamp says nothing)."""
    if finding.kind != "missing":
        return False
    path, target = (Path(os.path.abspath(p)) for p in (finding.path, finding.target))
    return target not in path.parents


def results_findings(results: str | Path, cache: str | Path = VERIFIED_CACHE) -> tuple[list[Finding], float]:
    """:func:`manifest_findings` of ``results`` with the ``cache`` of files verified by
    earlier runs (a file whose size and modification time did not change is not hashed
    again); the findings and the seconds it took. The cache is updated."""
    start = time.perf_counter()
    load_verified(cache)
    findings = manifest_findings(results, ".")
    if Path(cache).parent.is_dir():
        save_verified(cache)
    return findings, time.perf_counter() - start


def check_results_at_start(cfg: MutableMapping[str, Any], argv: Sequence[str], main: bool) -> float | None:
    """The start-up check of every run (``common.smk``): each checksum manifest below the
    results folder, before Snakemake schedules anything. Takes the switch
    (:data:`SWITCH`) out of ``cfg``; checks nothing in a job's own process (``main``
    false), when switched off, under an option that runs no job, or with ``--forceall``.
    Findings that ``--forcerun`` rebuilds, and deleted outputs (which Snakemake sees), are
    left to the run. Raises
    :class:`~swift_study.core.errors.DataError` naming every damaged file with the
    ``snakemake --forcerun`` that repairs it; returns the seconds the check took, ``None``
    when it did not run."""
    from ..core.errors import DataError

    enabled = cfg.pop(SWITCH, True)
    if not main or not enabled:
        return None
    run = parse_run_args(argv)
    if not run.schedules or run.forceall:
        return None
    findings, seconds = results_findings(cfg["results"])
    findings = [f for f in findings if not rebuilt_by(f, run.forced) and not seen_by_snakemake(f)]
    if findings:
        raise DataError(f"the results folder {cfg['results']} is not what the workflow wrote (checked before "
                        f"scheduling any job; switch off with --config {SWITCH}=False):\n"
                        + report(findings, run.repeat))
    return seconds

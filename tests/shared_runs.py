"""Runs that several test modules start from, built once per test session.

The tiny preset's ``swift`` target (model states, eval features, study scores) is what
test_ask uses as it is and what test_workflow's whole run continues: building it once
saves one build per module. Under pytest-xdist the workers share it through the
session's common temporary folder and a file lock, the pattern pytest-xdist documents
for a session fixture that must run once. Users copy it (:func:`copy_run`) and never
write into it.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from swift_study.core.offline import offline_env

from parallel import CORES

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def copy_run(src: Path, dst: Path) -> Path:
    """A copy of a run's folder (results and Snakemake's metadata, modification times
    kept, so the copy is exactly as up to date as the original), without its locks."""
    shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns("locks", "swift-study.lock"))
    return dst


def snakemake_tiny(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Snakemake on the tiny preset in ``workdir`` with the tests' cores (``args``: targets
    and flags); with ``check``, a failure raises with the end of its stderr."""
    cmd = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(REPO / "config" / "tiny.yaml"), "--cores", CORES, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=offline_env(), timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stderr[-6000:]}")
    return proc


def build_once(root: Path, name: str, targets: Sequence[str]) -> Path:
    """``root/name``: the tiny preset's ``targets``, built by the first caller of this
    session (the others wait on the lock, then find it built)."""
    from filelock import FileLock

    work, done = root / name, root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(work, ignore_errors=True)
            snakemake_tiny(work, *targets, "--quiet", "rules")
            done.write_text("built\n")
    return work

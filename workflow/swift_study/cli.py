"""The ``swift-study`` command: run the workflow with a preset, or the gradient benchmark.

    swift-study run [--preset tiny|default|paper] [snakemake arguments...]
    swift-study bench [benchmark arguments...]

``run`` calls Snakemake on the project's ``Snakefile`` with ``--cores all`` (unless
given) and the preset's config file; every other argument goes to Snakemake
unchanged (``swift-study run -n``, ``swift-study run swift``). Results land in the
working directory's ``results`` folder (the preset's ``results:`` key).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from .runner import set_offline

ROOT = Path(__file__).resolve().parents[2]
PRESETS = {"default": "config.yaml", "tiny": "tiny.yaml", "paper": "paper.yaml"}


def snakemake_command(preset: str, extra: list[str]) -> list[str]:
    """The Snakemake command line ``run`` executes."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]
    if not any(a == "--cores" or a.startswith("--cores=") or a in ("-c",) or
               (a.startswith("-c") and a[2:].isdigit()) for a in extra):
        cmd += ["--cores", "all"]
    if preset != "default":
        cmd += ["--configfile", str(ROOT / "config" / PRESETS[preset])]
    return cmd + list(extra)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``swift-study`` console script."""
    parser = argparse.ArgumentParser(prog="swift-study", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the Snakemake workflow (extra arguments go to snakemake)")
    run.add_argument("--preset", choices=sorted(PRESETS), default="default",
                     help="configuration preset: config/config.yaml (default), tiny or paper")
    sub.add_parser("bench", help="gradient-engine benchmark (benchmarks/bench_gradients.py)")
    args, extra = parser.parse_known_args(argv)
    set_offline()
    if args.command == "run":
        return subprocess.call(snakemake_command(args.preset, extra))
    return subprocess.call([sys.executable, str(ROOT / "benchmarks" / "bench_gradients.py"), *extra])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

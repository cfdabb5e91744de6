"""The swift-study console script."""
import subprocess
import sys

from swift_study.cli import ROOT, snakemake_command


def test_help_works():
    proc = subprocess.run([sys.executable, "-m", "swift_study.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "run" in proc.stdout and "bench" in proc.stdout


def test_run_builds_the_snakemake_command():
    cmd = snakemake_command("tiny", ["-n"])
    assert cmd[-1] == "-n" and str(ROOT / "Snakefile") in cmd
    assert cmd[cmd.index("--configfile") + 1].endswith("config/tiny.yaml")
    assert cmd[cmd.index("--cores") + 1] == "all"
    assert "--configfile" not in snakemake_command("default", [])
    assert snakemake_command("default", ["--cores", "2"]).count("--cores") == 1

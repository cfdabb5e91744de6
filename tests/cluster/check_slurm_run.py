"""Check a run of the tiny preset through SLURM (``make test-slurm``) against a local run.

    python tests/cluster/check_slurm_run.py --log SLURM_RUN_LOG --profile workflow/profiles/slurm \
        --local RESULTS_LOCAL --slurm RESULTS_SLURM

1. every job Snakemake ran is a SLURM job: the run's jobs in ``sacct`` (job name = the
   plugin's run id, printed in the log as ``SLURM run ID``) cover every ``rule X:`` the
   log names, each ``COMPLETED`` with exit code 0;
2. each job's ``mem_mb``, ``runtime`` and ``cpus_per_task`` (the profile's
   ``set-resources`` over the rule's own ``resources:`` over the profile's
   ``default-resources``, Snakemake's precedence) reached ``sbatch``: sacct's ReqMem,
   Timelimit and ReqCPUS (the rule is the plugin's ``--comment rule_<name>...``);
3. the CSVs of the swift summary, the validation and the alignment equal the local run's.

Prints the sacct table (the evidence) and one line per check; exits 1 on a failure.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import yaml

CSVS = ("swift/summary.csv", "validation/validation.csv", "validation/alignment.csv")
FIELDS = "JobIDRaw,JobName%40,Comment%80,Partition,State,ExitCode,ReqMem,ReqCPUS,Timelimit,ReqTRES%60,Elapsed"


def run_id(log: str) -> str:
    """The plugin's run id (every job's SLURM job name) from the Snakemake log."""
    m = re.search(r"SLURM run ID: (\S+)", log)
    if not m:
        raise SystemExit("no 'SLURM run ID' in the log: was the slurm executor used?")
    return m.group(1)


def rules_run(log: str) -> Counter:
    """Jobs per rule Snakemake ran (``rule X:`` blocks; ``localrule`` ones are not SLURM jobs)."""
    return Counter(re.findall(r"^rule (\w+):", log, flags=re.M))


def rule_resources(rules_dir: Path) -> dict[str, dict[str, int]]:
    """The integer resources each rule declares itself (``resources: mem_mb=N``)."""
    out = {}
    for smk in rules_dir.glob("*.smk"):
        for chunk in re.split(r"^rule ", smk.read_text(encoding="utf-8"), flags=re.M)[1:]:
            block = re.search(r"^    resources:\n((?:        .*\n)+)", chunk, flags=re.M)
            declared = dict(re.findall(r"(\w+)=(\d+)", block.group(1))) if block else {}
            out[chunk.split(":", 1)[0]] = {k: int(v) for k, v in declared.items()}
    return out


def expected_resources(profile: Path, rule: str, declared: dict[str, dict[str, int]] | None = None) -> dict:
    """``mem_mb``, ``runtime``, ``cpus_per_task`` that ``rule``'s jobs should ask ``sbatch`` for,
    by Snakemake's precedence: the profile's ``set-resources``, then the rule's own
    ``resources:`` (``declared``, from :func:`rule_resources`), then ``default-resources``."""
    cfg = yaml.safe_load((profile / "config.yaml").read_text())
    res = {**cfg.get("default-resources", {}), **(declared or {}).get(rule, {}),
           **cfg.get("set-resources", {}).get(rule, {})}
    return {k: int(res[k]) for k in ("mem_mb", "runtime", "cpus_per_task")}


def minutes(limit: str) -> int:
    """sacct Timelimit ``[D-]HH:MM:SS`` -> minutes."""
    days, _, hms = limit.rpartition("-")
    h, m, s = (int(x) for x in hms.split(":"))
    return int(days or 0) * 1440 + h * 60 + m + (1 if s else 0)


def sacct(name: str) -> pd.DataFrame:
    """The allocations (``-X``) named ``name``, memory in MB."""
    out = subprocess.run(["sacct", "-X", "--parsable2", "--units=M", "--name", name, "-S", "now-2days",
                          "--format", FIELDS.replace("%40", "").replace("%80", "").replace("%60", "")],
                         check=True, capture_output=True, text=True).stdout
    rows = [line.split("|") for line in out.strip().splitlines()]
    return pd.DataFrame(rows[1:], columns=rows[0]) if rows else pd.DataFrame()


def main(argv: list[str] | None = None) -> int:
    """Run the three checks; 0 when all pass."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--log", required=True)
    ap.add_argument("--profile", default="workflow/profiles/slurm")
    ap.add_argument("--local", required=True)
    ap.add_argument("--slurm", required=True)
    a = ap.parse_args(argv)
    log = Path(a.log).read_text(errors="replace")
    uuid = run_id(log)
    subprocess.run(["sacct", "-X", "--name", uuid, "-S", "now-2days", "--format", FIELDS], check=False)
    jobs = sacct(uuid)
    failures = []
    if jobs.empty:
        failures.append(f"sacct lists no job named {uuid}")
        jobs = pd.DataFrame(columns=["Comment", "State", "ExitCode", "ReqMem", "ReqCPUS", "Timelimit"])
    jobs["rule"] = jobs["Comment"].str.extract(r"^rule_(\w+?)(?:_wildcards_.*)?$", expand=False)
    done = jobs[(jobs["State"] == "COMPLETED") & (jobs["ExitCode"] == "0:0")]
    want, got = rules_run(log), Counter(done["rule"].dropna())
    missing = {r: n - got[r] for r, n in want.items() if got[r] < n}
    print(f"snakemake ran {sum(want.values())} jobs of {len(want)} rules; sacct: {len(jobs)} SLURM jobs, "
          f"{len(done)} COMPLETED 0:0")
    if not want:
        failures.append("the log names no rule job")
    if missing:
        failures.append(f"jobs with no completed SLURM job: {missing}")
    declared = rule_resources(Path(a.profile).resolve().parents[1] / "rules")
    for _, j in jobs.dropna(subset=["rule"]).iterrows():
        exp = expected_resources(Path(a.profile), j["rule"], declared)
        seen = {"mem_mb": int(float(j["ReqMem"].rstrip("MGn"))), "runtime": minutes(j["Timelimit"]),
                "cpus_per_task": int(j["ReqCPUS"])}
        if seen != exp:
            failures.append(f"job {j['JobIDRaw']} ({j['rule']}): sbatch got {seen}, the profile and rule say {exp}")
    for rel in CSVS:
        try:
            pd.testing.assert_frame_equal(pd.read_csv(Path(a.local) / rel), pd.read_csv(Path(a.slurm) / rel),
                                          check_exact=False, rtol=1e-5, atol=1e-8)
            print(f"equal: {rel}")
        except (AssertionError, OSError) as exc:
            failures.append(f"{rel}: the SLURM run differs from the local run: {exc}")
    for f in failures:
        print(f"FAIL: {f}", file=sys.stderr)
    if not failures:
        print("ok: every job ran under SLURM with the profile's resources; results equal the local run's")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

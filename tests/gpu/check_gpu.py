"""`make test-gpu`: the GPU path end to end, on a machine with one CUDA GPU (<= 8 minutes).

1. The tiny preset end to end twice, on ``device: cuda`` and on ``device: cpu`` (each in its
   own results folder), and their state accuracies and swift tables compared within stated
   tolerances: state accuracy per task within 0.25 (tiny eval sets: 8 examples per task,
   greedy decoding can flip on float rounding), RelInf signs equal on at least 75% of the
   cells and the swift prediction d correlated (Pearson) at least 0.9 across the two runs.
2. `make bench`'s fidelity part on the GPU run's states with the tiny config
   (``benchmarks/fidelity.py``, ``--device cuda``): its projection error must stay >= 0.9.
3. `swift-study plan --calibrate` on the GPU, its per-rule estimates set beside the GPU run's
   benchmark files (``--compare-benchmarks``).

Without a GPU it prints why it skips and exits 0; `make test` never runs it.
Writes ``results-gpu-check/summary.json`` and prints one line per check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "results-gpu-check"
TOLERANCE = {"state_accuracy_abs": 0.25, "relinf_sign_agreement": 0.75, "d_pearson": 0.9, "fidelity_pearson": 0.9}


def _cuda() -> str | None:
    """Why there is no usable GPU, or None when there is one."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover
        return f"torch does not import ({exc})"
    if not torch.cuda.is_available():
        return "no CUDA GPU (torch.cuda.is_available() is False)"
    return None


def _snakemake(device: str, results: Path) -> float:
    t = time.time()
    cmd = [sys.executable, "-m", "snakemake", "--workflow-profile", "workflow/profiles/default", "--cores", "all",
           "--configfile", "config/tiny.yaml", "--config", f"device={device}", f"results={results}", "-q"]
    subprocess.run(cmd, cwd=REPO, check=True)
    return time.time() - t


def compare_runs(gpu: Path, cpu: Path) -> dict:
    """The tolerance checks of the two tiny runs (see the module docstring)."""
    import numpy as np
    import pandas as pd

    acc_g = pd.read_csv(gpu / "model" / "state_accuracy.csv", index_col=0)
    acc_c = pd.read_csv(cpu / "model" / "state_accuracy.csv", index_col=0)
    acc_diff = float((acc_g - acc_c).abs().to_numpy().max())
    sw_g, sw_c = pd.read_csv(gpu / "swift" / "summary.csv"), pd.read_csv(cpu / "swift" / "summary.csv")
    m = sw_g.merge(sw_c, on=["study", "context", "state"], suffixes=("_g", "_c"))
    ok = np.isfinite(m["relinf_g"]) & np.isfinite(m["relinf_c"])
    signs = float((np.sign(m.loc[ok, "relinf_g"] - 1) == np.sign(m.loc[ok, "relinf_c"] - 1)).mean())
    d_r = float(np.corrcoef(m["diff_g"], m["diff_c"])[0, 1])
    return {"state_accuracy_max_abs_diff": acc_diff, "relinf_sign_agreement": signs, "d_pearson": d_r,
            "ok": acc_diff <= TOLERANCE["state_accuracy_abs"] and signs >= TOLERANCE["relinf_sign_agreement"]
            and d_r >= TOLERANCE["d_pearson"]}


def main() -> int:
    why = _cuda()
    if why:
        print(f"test-gpu: skipped: {why}; run it on a machine with one GPU")
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    OUT.mkdir(exist_ok=True)
    summary: dict = {"tolerances": TOLERANCE}
    summary["gpu_run_s"] = _snakemake("cuda", OUT / "gpu")
    summary["cpu_run_s"] = _snakemake("cpu", OUT / "cpu")
    summary["compare"] = compare_runs(OUT / "gpu", OUT / "cpu")
    print(f"test-gpu: tiny preset cuda {summary['gpu_run_s']:.0f} s, cpu {summary['cpu_run_s']:.0f} s; "
          f"{summary['compare']}")
    sys.path.insert(0, str(REPO / "benchmarks"))
    from fidelity import bench_run_fidelity

    rows = bench_run_fidelity(OUT / "gpu", REPO / "config" / "tiny.yaml", n_eval=16, device="cuda")
    summary["fidelity"] = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in r.items()} for r in rows]
    fid_ok = all(r["projection"][0] >= TOLERANCE["fidelity_pearson"] for r in rows)
    plan = subprocess.run([sys.executable, "-m", "swift_study.cli", "plan", "--configfile", "config/tiny.yaml",
                           "--calibrate", "--compare-benchmarks", str(OUT / "gpu")], cwd=REPO,
                          capture_output=True, text=True)
    print(plan.stdout[-3000:])
    summary["plan_rc"] = plan.returncode
    (OUT / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    ok = summary["compare"]["ok"] and fid_ok
    print(f"test-gpu: {'passed' if ok else 'FAILED'} (summary in {OUT / 'summary.json'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

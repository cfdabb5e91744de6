"""Replicates of the whole study: the per-seed table, the combined test and sign stability
(synthetic results directories; `swift-study replicate --reuse` reads finished runs)."""
import numpy as np
import pandas as pd
import pytest

from swift_study.cli import main
from swift_study.alignment.replicates import replicate_tables, stratified_permutation_p


def fake_run(root, seed: int, signal: float):
    """A results directory whose last state's predictions track the outcomes with strength
    ``signal`` (the base's and the aggregate's do not)."""
    rng = np.random.default_rng(seed)
    rows, vals = [], []
    for study in ("cot", "corrupt"):
        for ctx in ("in", "cross", "task:add", "task:sub", "task:mul", "task:sort"):
            delta = rng.normal()
            if study == "corrupt" and ctx == "in":
                delta = -2.0
            for state in ("base", "step-10", "aggregate"):
                for pairing in ("relative", "own"):
                    pred = (signal if state == "step-10" else 0.0) * delta + rng.normal()
                    rows.append({"study": study, "context": ctx, "state": state, "pairing": pairing,
                                 "prediction": pred, "delta": delta,
                                 "agree": float(np.sign(pred) == np.sign(delta))})
            vals.append({"study": study, "context": ctx, "delta_ctrl": delta,
                         "delta_ctrl_lo": delta - 0.5, "delta_ctrl_hi": delta + 0.5})
    d = root / f"seed-{seed}" / "validation"
    d.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(d / "alignment.csv", index=False)
    pd.DataFrame(vals).to_csv(d / "validation.csv", index=False)
    return d.parent


def test_combined_test_finds_a_weak_signal_that_one_replicate_misses():
    rng = np.random.default_rng(0)
    pairs = []
    for _ in range(4):
        y = rng.normal(size=20)
        pairs.append((0.6 * y + rng.normal(size=20), y))
    rho, p = stratified_permutation_p(pairs, n_perm=2000)
    assert rho > 0.2 and p < 0.01
    null = [(rng.normal(size=20), rng.normal(size=20)) for _ in range(4)]
    _, p0 = stratified_permutation_p(null, n_perm=2000)
    assert p0 > 0.01


def test_replicate_tables_and_cli(tmp_path, capsys):
    runs = {str(s): fake_run(tmp_path, s, 2.0) for s in (1, 2, 3)}
    per, combined, cells = replicate_tables(runs, n_perm=500, state="last")
    assert len(per) == 6 and set(per["replicate"]) == {"1", "2", "3"} and set(per["state"]) == {"step-10"}
    rel = combined.set_index("pairing").loc["relative"]
    assert rel["replicates"] == 3 and rel["cells"] == 36 and rel["stratified_permutation_p"] < 0.05
    agg, _, _ = replicate_tables(runs, n_perm=500, state="aggregate")  # the state is the one asked for
    assert set(agg["state"]) == {"aggregate"} and not np.allclose(agg["spearman"], per["spearman"])
    corrupt_in = cells[(cells["study"] == "corrupt") & (cells["context"] == "in")].iloc[0]
    assert corrupt_in["significant_somewhere"] and corrupt_in["same_sign"]
    assert set(cells["context"]) == {"in", "cross"}
    root = tmp_path / "tables"
    code = main(["replicate", "--seeds", "1", "2", "3", "--root", str(root), "--state", "last",
                 "--reuse", *(f"{s}={d}" for s, d in runs.items())])
    assert code == 0
    assert (root / "replicates.md").read_text().count("seed") >= 1
    assert (root / "replicates.png").stat().st_size > 0 and (root / "combined.csv").exists()
    # --reuse repeated, one seed each (it once kept only the last, and reran the others)
    again = tmp_path / "again"
    args = [a for s, d in runs.items() for a in ("--reuse", f"{s}={d}")]
    assert main(["replicate", "--seeds", "1", "2", "3", "--root", str(again), "--state", "last", *args]) == 0
    assert (again / "combined.csv").read_text() == (root / "combined.csv").read_text()


def test_a_missing_replicate_is_a_clear_error(tmp_path):
    from swift_study.core.errors import DataError

    with pytest.raises(DataError, match="run the whole study there first"):
        replicate_tables({"1": tmp_path / "nothing"})
    run = fake_run(tmp_path, 4, 1.0)
    with pytest.raises(DataError, match="no model state 'step-99'"):
        replicate_tables({"4": run}, state="step-99")

"""Validation effects, agreement, rank correlation, permutation test, cost table."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from swift_study.alignment.stats import (
    agreement_rate, agrees, alignment_stats, alignment_table, merge_swift_validation,
    permutation_pvalue, sign, spearman, spearman_rows,
)
from swift_study.validation.effects import delta
from swift_study.alignment.costs import StudyShape, cost_table, flop_table, read_benchmarks
from swift_study.core.errors import DataError

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


# ----------------------------------------------------------------------- delta


def test_delta_correctness_hand_computed():
    a = np.array([1, 1, 0, 1, 1, 0, 1, 1])
    b = np.array([0, 1, 0, 0, 1, 0, 1, 0])
    r = delta(a, b, n_boot=500, seed=1)
    assert r.delta == pytest.approx(3 / 8)
    assert r.lo <= r.delta <= r.hi and r.n_examples == 8 and r.n_seeds == 1
    assert delta(a, b, n_boot=500, seed=1) == r
    assert delta(a, b, n_boot=500, seed=2).lo != r.lo or delta(a, b, n_boot=500, seed=2).hi != r.hi
    d = r.as_dict()
    assert d["delta"] == r.delta and d["delta_lo"] == r.lo


def test_delta_constant_difference_has_zero_width():
    a = np.linspace(0, 1, 20)
    r = delta(a + 0.25, a, n_boot=200, seed=0)
    assert r.delta == pytest.approx(0.25) and r.lo == pytest.approx(0.25) and r.hi == pytest.approx(0.25)


def test_delta_losses_and_ids():
    la = pd.Series({"e1": 1.0, "e2": 2.0, "e3": 0.5})
    lb = pd.Series({"e3": 1.5, "e1": 1.0, "e2": 3.0})  # other order: aligned by id
    r = delta(la, lb, n_boot=100, higher_is_better=False)
    assert r.delta == pytest.approx((0.0 + 1.0 + 1.0) / 3)  # improvement = loss_b - loss_a
    with pytest.raises(DataError):
        delta(la, pd.Series({"e1": 1.0, "e2": 2.0, "x": 0.5}), n_boot=10)
    with pytest.raises(DataError):
        delta(np.ones(3), np.ones(4), n_boot=10)


def test_delta_over_seeds_and_nan():
    A = [np.array([1, 1, 0, 1.0]), np.array([1, 0, 0, 1.0])]
    B = [np.array([0, 1, 0, 0.0]), np.array([0, 0, 0, 1.0])]
    r = delta(A, B, n_boot=300, seed=0)
    assert r.n_seeds == 2 and r.delta == pytest.approx(np.mean(A) - np.mean(B))
    assert r.lo <= r.delta <= r.hi
    r3 = delta(A + [np.array([1, 1, 1, 1.0])], B, n_boot=300, seed=0)  # unpaired seed counts
    assert r3.n_seeds == 3 and r3.delta == pytest.approx(np.mean(A + [np.ones(4)]) - np.mean(B))
    rn = delta(np.array([1.0, np.nan, 0.0]), np.array([0.0, 1.0, 0.0]), n_boot=50)
    assert rn.n_examples == 2 and rn.delta == pytest.approx(0.5)


# ------------------------------------------------------------------- agreement


def test_sign_and_agreement_rules():
    assert sign(0.0) == 0 and sign(-2) == -1 and math.isnan(sign(float("nan")))
    assert agrees(1.5, 0.1) == 1.0
    assert agrees(0.5, -0.1) == 1.0
    assert agrees(0.5, 0.1) == 0.0
    assert agrees(1.0, 0.0) == 1.0  # both ties agree
    assert agrees(1.0, 0.1) == 0.0  # a tie on one side only is a disagreement
    assert agrees(1.2, 0.0) == 0.0
    assert math.isnan(agrees(float("nan"), 0.1))


def test_alignment_table_and_rate():
    rows = [
        dict(study="a", strategy="cot", context="in", relinf=1.5, delta=0.1),
        dict(study="a", strategy="cot", context="cross", relinf=0.8, delta=0.2),
        dict(study="b", strategy="clarify", context="in", relinf=1.1, delta=0.05, unstable=True),
        dict(study="b", strategy="clarify", context="cross", relinf=float("nan"), delta=-0.1),
    ]
    t = alignment_table(rows)
    assert list(t["agree"].iloc[:3]) == [1.0, 0.0, 1.0] and math.isnan(t["agree"].iloc[3])
    assert agreement_rate(t) == pytest.approx(2 / 3)
    assert list(t["unstable"]) == [False, False, True, False]
    st = alignment_stats(t, n_perm=100)
    assert st["n_cells"] == 3 and st["n_agree"] == 2
    assert st["spearman"] == pytest.approx(stats.spearmanr([1.5, 0.8, 1.1], [0.1, 0.2, 0.05]).statistic)
    empty = alignment_table([])
    assert len(empty) == 0 and math.isnan(agreement_rate(empty))


def test_merge_swift_validation():
    swift = pd.DataFrame(dict(
        study=["a"] * 4, strategy=["cot"] * 4, context=["in", "in", "cross", "cross"],
        state=["k0", "aggregate"] * 2, relinf=[9.0, 1.4, 9.0, 0.7], relinf_lo=[0, 1.1, 0, 0.5],
        relinf_hi=[0, 1.9, 0, 0.9], unstable=[False] * 4))
    val = pd.DataFrame(dict(study=["a", "a"], context=["in", "cross"], delta=[0.1, 0.05],
                            delta_lo=[0.0, -0.1], delta_hi=[0.2, 0.2]))
    t = merge_swift_validation(swift, val)
    assert list(t["relinf"]) == [1.4, 0.7] and list(t["agree"]) == [1.0, 0.0]


def test_each_prediction_is_paired_with_the_outcome_it_predicts():
    swift = pd.DataFrame(dict(
        study=["a", "a"], strategy=["cot"] * 2, context=["in", "cross"], state=["aggregate"] * 2,
        relinf=[1.5, 0.5], diff=[0.2, -0.3], s_strategy=[0.6, 0.3], unstable=[False, True]))
    val = pd.DataFrame(dict(study=["a", "a"], context=["in", "cross"],
                            delta=[-0.1, 0.2], delta_lo=[-0.2, 0.1], delta_hi=[0.0, 0.3],
                            delta_ctrl=[0.1, -0.2], delta_ctrl_lo=[0.0, -0.3], delta_ctrl_hi=[0.2, -0.1]))
    rel = merge_swift_validation(swift, val, pairing="relative")
    assert list(rel["prediction"]) == [0.2, -0.3] and list(rel["delta"]) == [0.1, -0.2]
    assert list(rel["delta_lo"]) == [0.0, -0.3] and list(rel["agree"]) == [1.0, 1.0]
    own = merge_swift_validation(swift, val, pairing="own")
    assert list(own["prediction"]) == [0.6, 0.3] and list(own["delta"]) == [-0.1, 0.2]
    assert list(own["agree"]) == [0.0, 1.0] and set(own["pairing"]) == {"own"}
    with pytest.raises(DataError, match="unknown pairing"):
        merge_swift_validation(swift, val, pairing="ratio")


# ----------------------------------------------------------------- correlation


def test_spearman_matches_scipy_and_is_nan_safe():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=9), rng.normal(size=9)
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
    xn = x.copy()
    xn[2] = np.nan
    keep = np.arange(9) != 2
    assert spearman(xn, y) == pytest.approx(stats.spearmanr(x[keep], y[keep]).statistic)
    assert math.isnan(spearman([1, 2], [2, 1]))
    assert math.isnan(spearman([1, 2, 3, 4], [5, 5, 5, 5]))


def test_permutation_pvalue_monotone():
    x = np.arange(5.0)
    # exact: 5! = 120 <= n_perm; only identity and reversal reach |rho| = 1
    assert permutation_pvalue(x, x**2, n_perm=200) == pytest.approx(2 / 120)
    x8 = np.arange(8.0)
    p = permutation_pvalue(x8, np.exp(x8), n_perm=2000, seed=1)
    assert p < 0.01 and p >= 1 / 2001
    assert p == permutation_pvalue(x8, np.exp(x8), n_perm=2000, seed=1)


def test_permutation_pvalue_constant_and_exact_bruteforce():
    assert math.isnan(permutation_pvalue([1, 2, 3, 4], [1, 1, 1, 1]))
    assert math.isnan(permutation_pvalue([1, 2], [1, 2]))
    x = np.array([0.3, 1.2, 0.9, 2.0, 1.2])
    y = np.array([0.1, -0.2, 0.4, 0.3, 0.0])
    rho = stats.spearmanr(x, y).statistic
    rhos = [stats.spearmanr(x, y[list(p)]).statistic for p in itertools.permutations(range(5))]
    expect = np.mean(np.abs(rhos) >= abs(rho) - 1e-12)
    assert permutation_pvalue(x, y, n_perm=1000) == pytest.approx(expect)
    # random permutations approximate the exact value
    p_mc = permutation_pvalue(x, y, n_perm=100, seed=0)
    assert abs(p_mc - expect) < 0.2


# ------------------------------------------------------------------------ cost


def test_read_benchmarks(tmp_path):
    f1 = tmp_path / "gradients.tsv"
    f1.write_text(HEADER + "12.5\t0:00:12\t512.3\t900.1\t500.0\t505.0\t1.2\t3.4\t95.0\t11.9\n"
                  "13.5\t0:00:13\t515.0\t901.0\t-\t-\t1.0\t3.0\t96.0\t12.1\n")
    f2 = tmp_path / "old.tsv"  # an older layout: fewer columns
    f2.write_text("s\th:m:s\n-\t1 day, 0:00:02\n")
    b = read_benchmarks([f1, f2])
    assert len(b) == 3
    assert list(b["repeat"]) == [0, 1, 0]
    assert b["s"].tolist() == [12.5, 13.5, 86402.0]
    assert math.isnan(b["max_uss"].iloc[1]) and math.isnan(b["cpu_time"].iloc[2])
    assert b["path"].iloc[2] == str(f2)


def test_cost_table(tmp_path):
    def bench(name, s, cpu):
        p = tmp_path / name
        p.write_text(HEADER + f"{s}\t0:00:00\t100\t200\t-\t-\t0\t0\t50\t{cpu}\n")
        return p
    swift = [bench("score.tsv", 10.0, 8.0), bench("grads.tsv", 20.0, 12.0)]
    val = [bench("train_b.tsv", 300.0, 250.0), bench("train_bs.tsv", 310.0, 260.0),
           bench("eval.tsv", 90.0, 90.0)]
    t = cost_table(swift, val).set_index("side")
    assert t.loc["swift", "wall_s"] == 30.0 and t.loc["swift", "cpu_s"] == 20.0
    assert t.loc["validation", "wall_s"] == 700.0 and t.loc["validation", "n_jobs"] == 3
    assert t.loc["speedup", "wall_s"] == pytest.approx(700 / 30)
    assert t.loc["speedup", "cpu_s"] == pytest.approx(600 / 20)
    t0 = cost_table([], val).set_index("side")
    assert math.isnan(t0.loc["speedup", "wall_s"])


def test_tiny_predictions_keep_their_sign():
    # learning-rate-weighted inflows can be far below float epsilon around 1
    t = alignment_table([dict(relinf=float("nan"), prediction=1e-18, delta=0.1),
                         dict(relinf=float("nan"), prediction=-1e-18, delta=0.1)])
    assert list(t["sign_swift"]) == [1.0, -1.0] and list(t["agree"]) == [1.0, 0.0]


def test_flop_table_counts_each_side_and_projects_to_7b():
    shape = StudyShape(swift_tokens=1000, n_states=4, train_tokens=2e5, gen_prompt_tokens=3000, loss_tokens=4000)
    t = flop_table(shape, n_params=1_000_000, n_params_7b=7e9, flops_per_s=1e14).set_index("side")
    assert t.loc["swift", "flops"] == 6 * 1000 * 4 * 1e6
    assert t.loc["validation", "flops"] == (6 * 2e5 + 2 * 7000) * 1e6
    assert t.loc["ratio", "flops"] == pytest.approx(t.loc["validation", "flops"] / t.loc["swift", "flops"])
    assert t.loc["ratio", "flops_7b"] == pytest.approx(t.loc["ratio", "flops"])  # N cancels
    assert t.loc["swift", "gpu_hours_7b"] == pytest.approx(6 * 1000 * 4 * 7e9 / 1e14 / 3600)


def test_saved_model_parameters_match_the_loaded_model(tiny_model_dir):
    from swift_study.alignment.costs import saved_model_parameters
    from swift_study.model.modeling import load_model

    model = load_model(tiny_model_dir)
    assert saved_model_parameters(tiny_model_dir) == sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def test_spearman_rows_is_spearman_row_by_row_with_ties_and_constant_rows():
    """The batched rho of the bootstraps equals :func:`spearman` on every row (resamples
    repeat cells, so ties are the rule), NaN where a row is constant."""
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=12), rng.normal(size=12)
    idx = rng.integers(0, 12, (300, 12))
    idx[0] = 5  # one resample of a single cell: constant on both sides
    got = spearman_rows(x[idx], y[idx])
    want = np.array([spearman(x[i], y[i]) for i in idx])
    assert np.isnan(got[0]) and np.isnan(want[0])
    np.testing.assert_allclose(got[1:], want[1:], rtol=0, atol=1e-12)
    assert np.isnan(spearman_rows(x[None, :2], y[None, :2])).all()  # under three cells

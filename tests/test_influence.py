"""Swift-study scores: estimators, contexts, inflows, RelInf, bootstrap, aggregate."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from swift_study.core.errors import ArgumentError, DataError
from swift_study.swift.influence import (
    COLUMNS, ScoreArgs, StateScores, _boot_inflow, _resample_counts, aggregate_weights,
    context_masks, inflow, normalize, relinf, score_study, zero_norm_pairs,
)
from swift_study.swift.state_scores import load_state_npz
from swift_study.swift.summary import summary_markdown
from swift_study.data.study import Study

# Two queries: q1 (task A), q2 (task B); eval examples of tasks A, B, C; in_task = (A, B).
# Probe rows deliberately not in query order, baseline rows first.
FMT = ["qa", "cot", "qa", "cot"]
TASK = ["B", "A", "A", "B"]
QUERY = ["q2", "q1", "q1", "q2"]
DOTS = np.array([
    [1.0, 1.0, 3.0],  # qa  q2
    [2.0, 4.0, 6.0],  # cot q1
    [1.0, 2.0, 3.0],  # qa  q1
    [1.0, 3.0, 3.0],  # cot q2
])
PROBE_NORMS = np.array([1.0, 2.0, 1.0, 1.0])
EVAL_NORMS = np.array([1.0, 2.0, 3.0])
EVAL_TASK = ["A", "B", "C"]
STUDY = Study("cot_ab", "cot", ("A", "B"))


def state(name="s1", dots=DOTS, lr=None, eval_norms=EVAL_NORMS, **kw):
    return StateScores(name, dots, PROBE_NORMS, eval_norms, FMT, TASK, QUERY, EVAL_TASK, lr=lr, **kw)


def cell(df, ctx, st="s1"):
    r = df[(df["context"] == ctx) & (df["state"] == st)]
    assert len(r) == 1
    return r.iloc[0]


def test_normalize_estimators():
    sp = normalize(DOTS, PROBE_NORMS, EVAL_NORMS, "scalar_projection")
    np.testing.assert_allclose(sp[1], [2.0, 2.0, 2.0])
    np.testing.assert_allclose(sp[3], [1.0, 1.5, 1.0])
    np.testing.assert_allclose(normalize(DOTS, PROBE_NORMS, EVAL_NORMS, "dot"), DOTS)
    cos = normalize(DOTS, PROBE_NORMS, EVAL_NORMS, "cosine")
    np.testing.assert_allclose(cos[1], [1.0, 1.0, 1.0])
    with pytest.raises(DataError):
        normalize(DOTS, PROBE_NORMS, EVAL_NORMS, "nope")


def test_zero_norms_give_zero_not_nan():
    en = np.array([1.0, 0.0, 3.0])
    dots = DOTS.copy()
    dots[:, 1] = 0.0
    sp = normalize(dots, PROBE_NORMS, en, "scalar_projection")
    assert np.all(np.isfinite(sp)) and np.all(sp[:, 1] == 0)
    assert zero_norm_pairs(PROBE_NORMS, en, "scalar_projection") == 4
    pn = np.array([0.0, 1.0, 1.0, 1.0])
    assert zero_norm_pairs(pn, en, "cosine") == 3 + 4 - 1
    assert zero_norm_pairs(pn, en, "dot") == 0
    assert np.all(np.isfinite(normalize(dots, pn, en, "cosine")))
    df = score_study([state(dots=dots, eval_norms=en)], STUDY, ScoreArgs(n_boot=50))
    assert not df[["s_strategy", "s_baseline"]].isna().any().any()
    assert not df.loc[df["context"].isin(["in", "cross"]), "relinf"].isna().any()
    # the zero-norm eval example is task B's only one: its per-task inflows are 0, RelInf undefined
    assert cell(df, "task:B")["s_baseline"] == 0 and np.isnan(cell(df, "task:B")["relinf"])
    assert set(df["n_zero_norm"]) == {4}


def test_context_masks():
    m = context_masks(["A", "B"], EVAL_TASK, ("A", "B"))
    assert list(m) == ["in", "cross", "task:A", "task:B", "task:C"]
    np.testing.assert_array_equal(m["in"], [[True, False, False], [False, True, False]])
    np.testing.assert_array_equal(m["cross"], [[False, False, True], [False, False, True]])
    np.testing.assert_array_equal(m["task:B"], [[False, True, False], [False, True, False]])


def test_per_task_inflows_hand_computed():
    # scalar projection: cot q1 [2, 2, 2], cot q2 [1, 1.5, 1]; qa q1 [1, 1, 1], qa q2 [1, .5, 1]
    df = score_study([state()], STUDY, ScoreArgs(n_boot=20))
    for t, s, b in (("A", 1.5, 1.0), ("B", 1.75, 0.75), ("C", 1.5, 1.0)):
        r = cell(df, f"task:{t}")
        assert r["s_strategy"] == pytest.approx(s) and r["s_baseline"] == pytest.approx(b), t
        assert r["n_eval"] == 1 and r["n_pairs"] == 2


def test_inflow_is_pairs_weighted():
    inf = np.array([[1.0, 2.0, 3.0], [10.0, 0.0, 0.0]])
    mask = np.array([[True, True, True], [True, False, False]])
    assert inflow(inf, mask) == pytest.approx(16.0 / 4)  # not (2 + 10) / 2
    assert np.isnan(inflow(inf, np.zeros_like(mask)))
    assert relinf(2.0, 0.5) == 4.0 and np.isnan(relinf(1.0, 0.0))


@pytest.mark.parametrize("estimator, s_in, b_in, s_cross, b_cross", [
    ("scalar_projection", 1.75, 0.75, 1.5, 1.0),
    ("dot", 2.5, 1.0, 4.5, 3.0),
    ("cosine", 1.25, 0.75, 1.0, 1.0),
])
def test_score_study_hand_computed(estimator, s_in, b_in, s_cross, b_cross):
    df = score_study([state(lr=0.1)], STUDY, ScoreArgs(estimator=estimator, n_boot=200, seed=3))
    assert list(df.columns) == list(COLUMNS)
    assert list(df["context"].drop_duplicates()) == ["in", "cross", "task:A", "task:B", "task:C"]
    assert list(df["state"]) == ["s1", "aggregate"] * 5
    for ctx, s, b in (("in", s_in, b_in), ("cross", s_cross, b_cross)):
        r = cell(df, ctx)
        assert r["s_strategy"] == pytest.approx(s)
        assert r["s_baseline"] == pytest.approx(b)
        assert r["relinf"] == pytest.approx(s / b)
        assert r["diff"] == pytest.approx(s - b)
        assert r["estimator"] == estimator and r["n_probes"] == 2
        assert r["n_eval_in"] == 2 and r["n_eval_cross"] == 1
        agg = cell(df, ctx, "aggregate")
        assert agg["s_strategy"] == pytest.approx(0.1 * s) and agg["relinf"] == pytest.approx(s / b)
    assert cell(df, "in")["n_pairs"] == 2 and cell(df, "cross")["n_pairs"] == 2
    assert cell(df, "in")["n_eval"] == 2 and cell(df, "cross")["n_eval"] == 1


def random_states(n_states=2, Q=12, E=80, shift=0.5, base_mean=1.0, seed=0, lrs=None):
    rng = np.random.default_rng(seed)
    tasks = np.array(["A", "B", "C", "D"])
    qt = rng.choice(tasks[:2], Q)
    fmt = ["cot"] * Q + ["qa"] * Q
    pt = np.concatenate([qt, qt])
    pq = [f"q{i}" for i in range(Q)] * 2
    et = np.resize(tasks, E)
    out = []
    for k in range(n_states):
        d = rng.normal(base_mean, 1.0, (2 * Q, E))
        d[:Q] += shift
        lr = None if lrs is None else lrs[k]
        out.append(StateScores(f"k{k}", d, np.ones(2 * Q), np.ones(E), fmt, pt, pq, et, lr=lr))
    return out


def test_bootstrap_contains_point_and_is_deterministic():
    states = random_states()
    study = Study("s", "cot", ("A", "B"))
    a = score_study(states, study, ScoreArgs(n_boot=500, seed=7))
    b = score_study(states, study, ScoreArgs(n_boot=500, seed=7))
    c = score_study(states, study, ScoreArgs(n_boot=500, seed=8))
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["relinf_lo"], c["relinf_lo"])
    for key in ("s_strategy", "s_baseline", "relinf", "diff"):
        assert np.all(a[f"{key}_lo"] <= a[key]) and np.all(a[key] <= a[f"{key}_hi"])
    assert not a["unstable"].any()
    assert (a["n_boot_valid"] == 500).all()


def test_boot_inflow_matches_explicit_resampling():
    rng = np.random.default_rng(1)
    inf = rng.normal(size=(5, 7))
    mask = rng.random((5, 7)) < 0.6
    W = _resample_counts(rng, 5, 20)
    V = _resample_counts(rng, 7, 20)
    fast = _boot_inflow(inf, mask, W, V)
    for b in range(20):
        rows = np.repeat(np.arange(5), W[b].astype(int))
        cols = np.repeat(np.arange(7), V[b].astype(int))
        sub_inf, sub_mask = inf[np.ix_(rows, cols)], mask[np.ix_(rows, cols)]
        expect = sub_inf[sub_mask].mean() if sub_mask.any() else np.nan
        np.testing.assert_allclose(fast[b], expect, equal_nan=True)


def test_unstable_when_baseline_straddles_zero():
    states = random_states(n_states=1, base_mean=0.0, shift=1.0, seed=2)
    df = score_study(states, Study("s", "cot", ("A", "B")), ScoreArgs(n_boot=400, seed=1))
    assert df["unstable"].all()
    assert df["unstable"].dtype == bool
    r = df.iloc[0]
    assert r["s_baseline_lo"] < 0 < r["s_baseline_hi"]
    md = summary_markdown(df)
    assert "unstable" in md and md.count("\n| s |") == df["context"].isin(["in", "cross"]).sum()


def test_aggregate_weights_and_shared_resampling():
    s = random_states(n_states=1, seed=4)[0]
    twin = StateScores("k1", s.dots, s.probe_norms, s.eval_norms, s.probe_format, s.probe_task,
                       s.probe_query, s.eval_task, lr=0.3)
    s.lr = 0.1
    study = Study("s", "cot", ("A", "B"))
    df = score_study([s, twin], study, ScoreArgs(n_boot=300, seed=5))
    for ctx in ("in", "cross"):
        one, agg = cell(df, ctx, "k0"), cell(df, ctx, "aggregate")
        assert agg["weights"] == "lr" and agg["weight"] == pytest.approx(0.4)
        # identical states + the same resampling in both: the aggregate is 0.4 x one state
        for key in ("s_strategy", "s_strategy_lo", "s_baseline_hi", "diff", "diff_lo"):
            assert agg[key] == pytest.approx(0.4 * one[key])
        for key in ("relinf", "relinf_lo", "relinf_hi"):
            assert agg[key] == pytest.approx(one[key])
    # unknown learning rate -> equal weights 1/K
    s.lr, twin.lr = 0.1, None
    df = score_study([s, twin], study, ScoreArgs(n_boot=50, seed=5))
    agg = cell(df, "in", "aggregate")
    assert agg["weights"] == "equal" and agg["weight"] == pytest.approx(1.0)
    assert agg["s_strategy"] == pytest.approx(cell(df, "in", "k0")["s_strategy"])
    assert set(df.loc[df["state"] == "k0", "weight"]) == {0.5}
    w, kind = aggregate_weights([0.1, float("nan")])
    assert kind == "equal" and list(w) == [0.5, 0.5]


def test_aggregate_hand_computed():
    st2 = state("s2", dots=DOTS * np.array([[1.0, 3.0, 1.0]]), lr=0.3)
    df = score_study([state(lr=0.1), st2], STUDY, ScoreArgs(n_boot=100))
    # state 2, scalar projection, in: S = (2 + 4.5)/2 = 3.25, B = (1 + 1.5)/2 = 1.25
    assert cell(df, "in", "s2")["s_strategy"] == pytest.approx(3.25)
    agg = cell(df, "in", "aggregate")
    assert agg["s_strategy"] == pytest.approx(0.1 * 1.75 + 0.3 * 3.25)
    assert agg["s_baseline"] == pytest.approx(0.1 * 0.75 + 0.3 * 1.25)
    assert agg["relinf"] == pytest.approx((0.175 + 0.975) / (0.075 + 0.375))


def test_states_aligned_by_eval_id():
    ids = np.array(["e0", "e1", "e2"])
    a = state("a", eval_id=ids)
    perm = [2, 0, 1]
    b = StateScores("b", DOTS[:, perm], PROBE_NORMS, EVAL_NORMS[perm], FMT, TASK, QUERY,
                    np.array(EVAL_TASK)[perm], eval_id=ids[perm])
    df = score_study([a, b], STUDY, ScoreArgs(n_boot=100, seed=1))
    ra, rb = cell(df, "in", "a"), cell(df, "in", "b")
    for key in ("s_strategy", "s_baseline", "relinf_lo", "relinf_hi"):
        assert ra[key] == pytest.approx(rb[key])


def test_bad_inputs():
    with pytest.raises(DataError, match="no matched"):
        score_study([StateScores("x", DOTS[1:], PROBE_NORMS[1:], EVAL_NORMS, FMT[1:], TASK[1:],
                                 QUERY[1:], EVAL_TASK)], STUDY)
    with pytest.raises(DataError, match="in_task"):
        score_study([state()], Study("x", "cot", ("A",)))
    with pytest.raises(DataError, match="no probe of format"):
        score_study([state()], Study("x", "clarify", ("A", "B")))
    with pytest.raises(DataError, match="length"):
        StateScores("x", DOTS, PROBE_NORMS[:2], EVAL_NORMS, FMT, TASK, QUERY, EVAL_TASK)
    bad = DOTS.copy()
    bad[0, 0] = np.nan
    with pytest.raises(DataError, match="non-finite"):
        state(dots=bad)
    with pytest.raises(ArgumentError, match="unknown estimator"):  # a config error, and a ValueError
        ScoreArgs(estimator="l2")


def test_npz_roundtrip(tmp_path):
    p = tmp_path / "scores.npz"
    np.savez(p, dots=DOTS, probe_norms=PROBE_NORMS, eval_norms=EVAL_NORMS, probe_format=np.array(FMT),
             probe_task=np.array(TASK), probe_query=np.array(QUERY), eval_task=np.array(EVAL_TASK),
             state=np.array("ckpt"), lr=np.array(np.nan))
    st = load_state_npz(p)
    assert st.state == "ckpt" and st.lr is None
    df = score_study([st], STUDY, ScoreArgs(n_boot=10))
    assert cell(df, "in", "ckpt")["relinf"] == pytest.approx(1.75 / 0.75)


def test_bootstrap_rows_per_context_and_state():
    # (speed of the bootstrap is a benchmark matter, not a unit-test assertion)
    states = random_states(n_states=3, Q=32, E=600, lrs=[1e-3, 2e-3, 3e-3])
    df = score_study(states, Study("s", "cot", ("A", "B")), ScoreArgs(n_boot=1000, seed=0))
    assert len(df) == (2 + 4) * (3 + 1)  # (in, cross, 4 eval tasks) x (3 states + aggregate)
    assert (df["n_boot_valid"] > 900).all()


def test_summary_markdown_table():
    df = score_study([state(lr=0.1)], STUDY, ScoreArgs(n_boot=50))
    md = summary_markdown(df)
    lines = md.splitlines()
    assert lines[0].startswith("| study |") and lines[1].startswith("|---")
    assert "2.33 [" in md

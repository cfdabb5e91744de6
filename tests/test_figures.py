"""Figures: files written (atomically), non-trivial, robust to unstable cells and NaNs."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from swift_study.alignment.stats import alignment_stats, alignment_table
from swift_study.core.errors import DataError
from swift_study.report.figures import cjk_font, plot_alignment, plot_study, plot_validation, strategy_label
from swift_study.swift.influence import ScoreArgs, StateScores, score_study
from swift_study.data.study import Study


def study_df(strategy="cot", n_states=4, unstable_state=2, seed=0):
    rng = np.random.default_rng(seed)
    Q, E = 10, 120
    tasks = np.array(["A", "B", "C", "D"])
    qt = rng.choice(tasks[:2], Q)
    fmt = [strategy] * Q + ["qa"] * Q
    pt = np.concatenate([qt, qt])
    pq = [f"q{i}" for i in range(Q)] * 2
    et = np.resize(tasks, E)
    states = []
    for k in range(n_states):
        d = rng.normal(0.0 if k == unstable_state else 0.8, 1.0, (2 * Q, E))
        d[:Q] += 0.5
        states.append(StateScores(f"step{10 * k}", d, np.ones(2 * Q), np.ones(E), fmt, pt, pq, et,
                                  lr=1e-3))
    return score_study(states, Study(f"{strategy}_ab", strategy, ("A", "B")), ScoreArgs(n_boot=200))


def check_files(png, pdf):
    assert png.exists() and pdf.exists()
    assert png.stat().st_size > 10_000 and pdf.stat().st_size > 5_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert not [p for p in png.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.fixture
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def test_plot_study_with_unstable_cells(tmp_path, no_warnings):
    df = study_df()
    assert df["unstable"].any()
    png, pdf = tmp_path / "fig" / "study.png", tmp_path / "fig" / "study.pdf"
    plot_study(df, png, pdf)
    check_files(png, pdf)


def test_plot_study_nans_and_user_strategy(tmp_path, no_warnings):
    df = study_df(strategy="反思_reflect", n_states=2, unstable_state=-1)
    df.loc[df.index[0], ["relinf", "relinf_lo", "relinf_hi"]] = np.nan
    df.loc[df.index[1], ["s_strategy_lo", "s_strategy_hi"]] = np.nan
    png, pdf = tmp_path / "u.png", tmp_path / "u.pdf"
    plot_study(df, png, pdf, title="user $strategy$")
    check_files(png, pdf)
    assert "reflect" in strategy_label("反思_reflect")
    if cjk_font() is None:
        assert strategy_label("cot") == "Chain-of-thought"
    else:
        assert "思维链" in strategy_label("cot")


def test_plot_study_rejects_two_studies(tmp_path):
    df = pd.concat([study_df("cot"), study_df("clarify")])
    with pytest.raises(DataError):
        plot_study(df, tmp_path / "x.png", tmp_path / "x.pdf")


def test_plot_study_empty(tmp_path, no_warnings):
    plot_study(study_df().iloc[0:0], tmp_path / "e.png", tmp_path / "e.pdf")
    assert (tmp_path / "e.png").stat().st_size > 1000


def test_plot_alignment(tmp_path, no_warnings):
    rows = [
        dict(study="a", strategy="cot", context="in", relinf=1.5, relinf_lo=1.2, relinf_hi=1.9,
             delta=0.05, delta_lo=0.01, delta_hi=0.09),
        dict(study="a", strategy="cot", context="cross", relinf=0.8, relinf_lo=0.6, relinf_hi=1.1,
             delta=0.02, delta_lo=-0.01, delta_hi=0.05),
        dict(study="b", strategy="clarify", context="in", relinf=40.0, relinf_lo=-300.0, relinf_hi=900.0,
             delta=0.03, delta_lo=np.nan, delta_hi=np.nan, unstable=True),
        dict(study="b", strategy="clarify", context="cross", relinf=np.nan, delta=-0.02),
        dict(study="c", strategy="evaluate", context="cross", relinf=0.9, relinf_lo=0.85, relinf_hi=0.95,
             delta=-0.02, delta_lo=-0.04, delta_hi=0.0),
    ]
    png, pdf = tmp_path / "align.png", tmp_path / "align.pdf"
    table = alignment_table(rows)
    plot_alignment(table, png, pdf, stats=alignment_stats(table, n_perm=200))
    check_files(png, pdf)


def test_plot_alignment_empty(tmp_path, no_warnings):
    plot_alignment(alignment_table([]), tmp_path / "a.png", tmp_path / "a.pdf", stats={})
    assert (tmp_path / "a.pdf").read_bytes()[:5] == b"%PDF-"


def test_plot_validation_forest(tmp_path, no_warnings):
    from swift_study.validation.outcomes import validation_effects

    rng = np.random.default_rng(3)
    ids = [f"e{i}" for i in range(60)]
    tasks = ["add"] * 20 + ["sub"] * 20 + ["sort"] * 20

    def frame(p):
        return pd.DataFrame({"id": ids, "task": tasks, "em": (rng.random(60) < p).astype(float),
                             "nll_per_token": rng.random(60)})

    samples = {m: [frame(p) for _ in range(2)] for m, p in
               {"B": 0.5, "B+s": 0.8, "ctrl+s": 0.5, "B+c": 0.1, "ctrl+c": 0.5}.items()}
    val = validation_effects(samples, [{"name": "s", "strategy": "cot", "in_task": ["add", "sub"]},
                                       {"name": "c", "strategy": "corrupt", "in_task": ["add"]}],
                             n_boot=100, confidence=0.95, seed=0)
    fig = plot_validation(val, tmp_path / "v.png", tmp_path / "v.pdf")
    assert (tmp_path / "v.png").stat().st_size > 5000 and (tmp_path / "v.pdf").stat().st_size > 1000
    assert len(fig.axes) == 2
    assert [t.get_text() for t in fig.axes[1].get_yticklabels()] == ["in", "cross", "add", "sort", "sub"]
    plot_validation(val.iloc[:0], tmp_path / "e.png")
    assert (tmp_path / "e.png").stat().st_size > 0

"""Every figure readable: no two pieces of text overlap (boxes from matplotlib's renderer),
no glyph missing (matplotlib's missing-glyph warning is an error here), far-out values
clipped with their value written, CJK labels drawn with the bundled font.

The frames have the shapes of the tiny preset's results (2 studies, states base and step-3
plus the aggregate, contexts in, cross and the 4 tasks) and of the default preset's (4
model states, 6 strategies), including a cell whose baseline is near 0 (RelInf -1000)."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from swift_study.report.figures import common as figures
from swift_study.alignment.stats import alignment_stats, alignment_table
from swift_study.report.figures import (BUNDLED_CJK_FONT, cjk_font, plot_alignment, plot_budget, plot_lds,
                                 plot_league, plot_state_accuracy, plot_study, plot_validation, text_boxes,
                                 text_overlaps)
from swift_study.swift.influence import ScoreArgs, StateScores, score_study
from swift_study.alignment.league import COLUMNS
from swift_study.data.study import Study

TASKS = ["add", "sub", "compare", "reverse"]
TINY_STATES = ["base", "step-3"]
DEFAULT_STATES = ["base", "step25", "step75", "step150"]


@pytest.fixture
def strict_glyphs():
    """Every warning an error, a missing glyph above all ("Glyph ... missing from font(s)")."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("error", message=r"(?s).*Glyph .* missing from")
        yield


def study_scores(strategy: str, states: list[str], seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    q, e = 8, 64
    qt = rng.choice(TASKS[:2], q)
    fmt = [strategy] * q + ["qa"] * q
    pt = np.concatenate([qt, qt])
    pq = [f"q{i}" for i in range(q)] * 2
    et = np.resize(np.array(TASKS), e)
    scores = []
    for k, name in enumerate(states):
        d = rng.normal(0.8, 1.0, (2 * q, e))
        d[:q] += 0.5
        scores.append(StateScores(name, d, np.ones(2 * q), np.ones(e), fmt, pt, pq, et, lr=1e-3 / (k + 1)))
    df = score_study(scores, Study(strategy, strategy, ("add", "sub")), ScoreArgs(n_boot=50))
    # a stable cell whose baseline is near 0: RelInf -1000 (task:add in the issue)
    i = df.index[(df["context"] == "task:add") & (df["state"] == states[-1])][0]
    df.loc[i, ["relinf", "relinf_lo", "relinf_hi", "unstable"]] = [-1000.0, -2500.0, -400.0, False]
    return df


def validation_frame(strategies: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for s in strategies:
        for ctx in ["in", "cross"] + [f"task:{t}" for t in TASKS]:
            b, c = rng.normal(0, 0.1, 2)
            rows.append(dict(study=s, strategy=s, context=ctx, in_task=ctx in ("task:add", "task:sub"),
                             delta_em=b, delta_em_lo=b - 0.08, delta_em_hi=b + 0.08,
                             delta_em_ctrl=c, delta_em_ctrl_lo=c - 0.05, delta_em_ctrl_hi=c + 0.05))
    return pd.DataFrame(rows)


def alignment_frame(strategies: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    rows = []
    for s in strategies:
        for ctx in ["in", "cross"] + [f"task:{t}" for t in TASKS]:
            r, dl = 1 + rng.normal(0, 0.05), rng.normal(0, 0.02)  # crowded near (1, 0)
            rows.append(dict(study=s, strategy=s, context=ctx, relinf=r, relinf_lo=r - 0.1, relinf_hi=r + 0.1,
                             delta=dl, delta_lo=dl - 0.03, delta_hi=dl + 0.03))
    rows[-1].update(relinf=-1000.0, relinf_lo=-3000.0, relinf_hi=900.0, unstable=True)
    return alignment_table(rows)


def league_frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = [dict(predictor="gradient", estimator=e, precondition=p, state=s, pairing=pair, n_cells=12,
                 n_agree=int(rng.integers(0, 12)), agreement_rate=rng.random(), spearman=rng.uniform(-0.5, 1.0),
                 p_value=rng.random(), seconds=30.0, default=(e, p, s) == ("scalar_projection", "adam", "aggregate"))
            for e in ("inner_product", "scalar_projection", "cosine") for p in ("none", "adam", "ekfac")
            for s in ("base", "step-3", "aggregate") for pair in ("relative", "own")]
    rows += [dict(predictor=name, estimator=est, precondition="none", state=s, pairing=pair, n_cells=12,
                  n_agree=int(rng.integers(0, 12)), agreement_rate=rng.random(), spearman=rng.uniform(-0.5, 1.0),
                  p_value=rng.random(), seconds=9.0, default=False)
             for name, est, s in (("repsim", "cosine", "step-3"), ("bm25", "dot", "text"), ("pilot", "dot", "step-3"))
             for pair in ("relative", "own")]
    df = pd.DataFrame(rows).sort_values("spearman", ascending=False).reset_index(drop=True)
    df.insert(0, "rank", range(1, len(df) + 1))
    return df[list(COLUMNS)]


def lds_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(4)
    configs = ["default: scalar_projection/adam", "best: cosine/none"]
    points = pd.DataFrame([dict(task=t, config=c, model=f"lds-{m}", predicted=rng.normal(), em=rng.random())
                           for t in TASKS for c in configs for m in range(3)])
    scores = pd.DataFrame([dict(config=c, task=t, lds=rng.uniform(-1, 1), n_models=3)
                           for c in configs for t in TASKS + ["mean"]])
    return points, scores


def budget_frame() -> pd.DataFrame:
    rows = []
    for cell in ("target", "other"):
        rows.append(dict(seed="all", target="add", cell=cell, selector="start", fraction=0.0, em=0.1, em_lo=0.05,
                         em_hi=0.15, n_examples=0))
        for sel in ("random", "cluster", "gradient", "swift"):
            for frac in (0.05, 0.1, 0.25):
                em = 0.2 + frac
                rows.append(dict(seed="all", target="add", cell=cell, selector=sel, fraction=frac, em=em,
                                 em_lo=em - 0.05, em_hi=em + 0.05, n_examples=int(144 * frac)))
        rows.append(dict(seed="all", target="add", cell=cell, selector="task", fraction=0.25, em=0.4, em_lo=0.35,
                         em_hi=0.45, n_examples=36))
        rows.append(dict(seed="all", target="add", cell=cell, selector="all", fraction=1.0, em=0.5, em_lo=0.45,
                         em_hi=0.55, n_examples=144))
    return pd.DataFrame(rows)


def state_accuracy_frame(states: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    return pd.DataFrame(rng.random((len(states), 5)), index=states, columns=TASKS + ["all"])


def every_figure(tmp_path, states: list[str], strategies: list[str]):
    """(name, draw) for every paper figure; draw(png, pdf) returns the figure."""
    val, align = validation_frame(strategies), alignment_frame(strategies)
    points, lds = lds_frames()
    out = [(f"swift_{s}", lambda png, pdf, s=s: plot_study(study_scores(s, states), png, pdf))
           for s in strategies]
    out += [
        ("state_accuracy", lambda png, pdf: plot_state_accuracy(state_accuracy_frame(states), png, pdf)),
        ("validation", lambda png, pdf: plot_validation(val, png, pdf)),
        ("alignment", lambda png, pdf: plot_alignment(align, png, pdf, stats=alignment_stats(align, n_perm=50))),
        ("league", lambda png, pdf: plot_league(league_frame(), png, pdf)),
        ("lds", lambda png, pdf: plot_lds(points, lds, png, pdf)),
        ("budget", lambda png, pdf: plot_budget(budget_frame(), png, pdf)),
    ]
    return out


@pytest.mark.parametrize("preset,states,strategies", [
    ("tiny", TINY_STATES, ["cot", "corrupt"]),
    ("default", DEFAULT_STATES, ["cot", "clarify", "evaluate", "corrupt", "rephrase", "反思_reflect"]),
])
def test_no_text_overlaps_and_no_missing_glyph_in_any_figure(tmp_path, strict_glyphs, preset, states, strategies):
    drawn = []
    for name, draw in every_figure(tmp_path, states, strategies):
        png, pdf = tmp_path / f"{name}.png", tmp_path / f"{name}.pdf"
        fig = draw(png, pdf)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and pdf.read_bytes()[:5] == b"%PDF-", name
        assert text_overlaps(fig) == [], f"{preset}/{name}: overlapping text"
        drawn.append(name)
    assert len(drawn) == len(strategies) + 6


def test_the_overlap_check_sees_overlapping_text():
    """The check can fail: two labels on top of each other, and the tick labels the issue saw
    (long state names on a narrow axis) are caught before the figure code turns them."""
    fig = figures._figure(3, 2)
    ax = fig.add_subplot(111)
    ax.text(0.5, 0.5, "16 probes, 600 eval")
    ax.text(0.52, 0.5, "16 probes, 600 eval")
    assert len(text_overlaps(fig)) >= 1
    fig = figures._figure(2, 2)
    ax = fig.add_subplot(111)
    ax.set_xticks(range(5), ["base", "step25", "step75", "step150", "aggregate"])
    assert text_overlaps(fig)
    figures._declutter_ticks(fig)  # what every plot does before saving
    assert text_overlaps(fig) == []


def test_a_missing_glyph_is_an_error_under_the_check(strict_glyphs):
    """U+20000 (CJK Extension B) is in no font here: matplotlib warns, the check raises;
    the figures' own labels replace it with '?'."""
    fig = figures._figure(3, 2)
    fig.text(0.1, 0.5, "\U00020000")
    with pytest.raises(UserWarning, match="missing from font"):
        text_boxes(fig)
    assert figures._safe("反思\U00020000") == "反思?"


def test_the_bundled_font_draws_the_chinese_labels(tmp_path, strict_glyphs):
    assert BUNDLED_CJK_FONT.is_file() and (BUNDLED_CJK_FONT.parent / "OFL.txt").is_file()
    assert BUNDLED_CJK_FONT.stat().st_size < 4_000_000
    assert cjk_font() == "Swift Sans SC"
    fig = plot_study(study_scores("cot", TINY_STATES), tmp_path / "s.png", tmp_path / "s.pdf")
    texts = [t.get_text() for t, _ in text_boxes(fig)]
    assert any("思维链" in t for t in texts) and any("相对影响" in t for t in texts)
    assert re.search(rb"SwiftSansSC", (tmp_path / "s.pdf").read_bytes())  # embedded in the PDF


def test_a_far_out_relinf_is_clipped_with_its_value_written(tmp_path, strict_glyphs):
    df = study_scores("cot", DEFAULT_STATES)
    fig = plot_study(df, tmp_path / "s.png", tmp_path / "s.pdf")
    panels = {ax.get_title().split("\n")[0]: ax for ax in fig.axes if ax.get_title()}
    lo, hi = panels["task:add"].get_ylim()
    assert -20 < lo < hi < 20  # not stretched to -1000
    texts = [t.get_text() for t in panels["task:add"].texts]
    assert "-1000" in texts
    for name, ax in panels.items():  # every other cell is drawn inside its panel
        assert ax.get_ylim()[1] - ax.get_ylim()[0] < 40, name


def test_every_figure_shares_one_style(tmp_path, strict_glyphs):
    for name, draw in every_figure(tmp_path, TINY_STATES, ["cot"]):
        fig: Figure = draw(tmp_path / f"{name}.png", None)
        assert fig.get_layout_engine() is not None, name
        assert fig.get_dpi() == 100, name
        assert {t.get_fontfamily()[0] for t, _ in text_boxes(fig)} <= {"DejaVu Sans"}, name


def test_every_paper_figure_redraws_from_its_stored_csv(tmp_path, strict_glyphs):
    """What `snakemake figures` runs (workflow/scripts/paper_figure.py): each figure from the
    CSV files the workflow stores, written and read back as the rules do."""
    from swift_study.report.figures import PAPER_FIGURES, render_stored

    study_scores("cot", TINY_STATES).to_csv(tmp_path / "cot.csv", index=False)
    acc = state_accuracy_frame(TINY_STATES)
    acc.index.name = "state"
    acc.to_csv(tmp_path / "state_accuracy.csv", float_format="%.4f")
    validation_frame(["cot", "corrupt"]).to_csv(tmp_path / "validation.csv", index=False)
    align = alignment_frame(["cot", "corrupt"])
    other = align.assign(agree=1.0 - align["agree"])  # other rows agree elsewhere: the filter matters
    pd.concat([(align if (s, p) == ("aggregate", "relative") else other).assign(state=s, pairing=p)
               for s in ("base", "aggregate") for p in ("relative", "own")]
              ).to_csv(tmp_path / "alignment.csv", index=False)
    league_frame().to_csv(tmp_path / "league.csv", index=False)
    points, lds = lds_frames()
    points.to_csv(tmp_path / "lds_points.csv", index=False)
    lds.to_csv(tmp_path / "lds.csv", index=False)
    budget_frame().to_csv(tmp_path / "budget.csv", index=False)
    inputs = {"swift": {"scores": tmp_path / "cot.csv"}, "state_accuracy": {"csv": tmp_path / "state_accuracy.csv"},
              "validation": {"validation": tmp_path / "validation.csv"},
              "alignment": {"alignment": tmp_path / "alignment.csv"}, "league": {"league": tmp_path / "league.csv"},
              "lds": {"points": tmp_path / "lds_points.csv", "scores": tmp_path / "lds.csv"},
              "budget": {"budget": tmp_path / "budget.csv"}}
    assert set(inputs) == set(PAPER_FIGURES)
    for name in PAPER_FIGURES:
        fig = render_stored(name, inputs[name], tmp_path / f"{name}.png", tmp_path / f"{name}.pdf", n_perm=50)
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000 and (tmp_path / f"{name}.pdf").stat().st_size > 5_000
        assert text_overlaps(fig) == [], name
    stored = alignment_stats(align, n_perm=50)
    assert stored["n_agree"] != alignment_stats(other, n_perm=50)["n_agree"]
    title = render_stored("alignment", inputs["alignment"], None, None, n_perm=50).axes[0].get_title()
    assert f"agreement {stored['n_agree']}/{stored['n_cells']}" in title, title  # the aggregate, relative rows


def test_each_paper_figure_has_its_rule_reading_stored_results_only():
    """workflow/rules/figures.smk: one rule per figure, each through paper_figure.py with a
    figure name render_stored knows, its inputs CSV files (and the plotting code)."""
    from pathlib import Path

    from swift_study.report.figures import PAPER_FIGURES

    smk = (Path(__file__).resolve().parents[1] / "workflow" / "rules" / "figures.smk").read_text(encoding="utf-8")
    rules = re.split(r"^rule ", smk, flags=re.M)[1:]
    drawn = set()
    for chunk in rules:
        name = chunk.split(":", 1)[0]
        if name == "figures":
            assert "figure_outputs" in chunk
            continue
        assert 'script:\n        "../scripts/paper_figure.py"' in chunk, name
        drawn.add(re.search(r'figure="(\w+)"', chunk).group(1))
        inputs = re.search(r"input:\n(.*?)\n    output:", chunk, flags=re.S).group(1)
        for line in inputs.strip().splitlines():
            assert line.strip().endswith(('.csv",', "code=FIGURE_CODE,")), (name, line)
    assert drawn == set(PAPER_FIGURES)

"""swift-study decompose (issue 29): the headline's Spearman per state, per property and per
group of cells, on hand-made tables (no model, no run)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from swift_study.alignment import decompose as dc
from swift_study.cli import main
from swift_study.data.records import Record
from swift_study.data.study import Study
from swift_study.swift.features import products_scores

TASKS = ("t1", "t2", "t3")
STUDIES = [Study("long", "cot", ("t1",)), Study("mid", "clarify", ("t2",)), Study("short", "evaluate", ("t3",))]
LENGTH = {"cot": 40, "clarify": 20, "evaluate": 12, "qa": 8}  # strategy response lengths (chars)


def _rec(task: str, q: int, fmt: str, split: str, n_chars: int) -> Record:
    qid = f"{task}-{split}-{q:03d}"
    return Record(f"{qid}:{fmt}", qid, task, "en", fmt, "Q?\n", "x" * (n_chars - 9) + "Answer: 1", "1", split)


def _contexts() -> list[str]:
    return ["in", "cross", *[f"task:{t}" for t in TASKS]]


def _validation(rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for s in STUDIES:
        for ctx in _contexts():
            in_task = ctx == "in" or ctx[5:] in s.in_task
            row = dict(study=s.name, strategy=s.strategy, context=ctx, in_task=in_task)
            for m in ("em", "loss"):
                for k in (f"delta_{m}", f"delta_{m}_ctrl"):
                    v = float(rng.normal())
                    row.update({k: v, f"{k}_lo": v - 1, f"{k}_hi": v + 1})
            rows.append(row)
    return pd.DataFrame(rows)


def _grid(prediction: dict[tuple[str, str, str], float]) -> pd.DataFrame:
    """league_scores rows of the headline configuration: (state, study, context) -> d."""
    rows = [dict(predictor="gradient", estimator="scalar_projection", precondition="adam", state=st, study=s,
                 strategy={x.name: x.strategy for x in STUDIES}[s], context=c, diff=d, s_strategy=d + 1.0,
                 relinf=1.0 + d, relinf_lo=np.nan, relinf_hi=np.nan, unstable=False, seed=7)
            for (st, s, c), d in prediction.items()]
    return pd.DataFrame(rows)


def _run(rng: np.random.Generator, prediction=None) -> dc.RunData:
    """A run in memory: probes whose strategy responses are LENGTH long, one state's products."""
    probes = {s.name: [_rec(s.in_task[0], q, f, "probe", LENGTH[f]) for q in range(4) for f in (s.strategy, "qa")]
              for s in STUDIES}
    evals = [_rec(t, q, "qa", "eval", 10) for t in TASKS for q in range(3)]
    influence = {}
    for s in STUDIES:
        p = probes[s.name]
        influence[s.name] = [products_scores("step-2", 0.1, rng.normal(size=(len(p), len(evals))),
                                             rng.uniform(1, 2, len(p)), rng.uniform(1, 2, len(evals)), p, evals)]
    if prediction is None:  # the headline is the length ratio minus 1: a length effect only
        prediction = {("step-2", s.name, c): LENGTH[s.strategy] / LENGTH["qa"] - 1 for s in STUDIES
                      for c in _contexts()}
    return dc.RunData(Path("mem"), "seed-7", _validation(rng), _grid(prediction),
                      {"estimator": "scalar_projection", "precondition": "adam", "state": "step-2"},
                      list(STUDIES), probes, influence, {})


def test_a_headline_that_is_the_length_ratio_has_no_spearman_left_once_length_is_partialled_out():
    run = _run(np.random.default_rng(0))
    rows = pd.DataFrame(dc.predictor_rows(run, n_perm=200))
    chars = rows[(rows["name"] == "chars: S / B") & (rows["metric"] == "em")].iloc[0]
    head = dc.cell_rows(run, n_perm=200)[0]
    assert head["group"] == "all" and head["metric"] == "em"
    assert chars["spearman"] == pytest.approx(head["spearman"])  # the same ranking of the cells
    assert abs(chars["partial_spearman"]) < 1e-9
    assert abs(rows[(rows["name"] == "study (format)") & (rows["metric"] == "em")]["partial_spearman"].iloc[0]) < 1e-9
    # a property the headline is not made of leaves it (nearly) whole: the probes' gradient norm
    norm = rows[(rows["name"] == "norm: S / B") & (rows["metric"] == "em")].iloc[0]
    assert np.isfinite(norm["partial_spearman"])


def test_partial_spearman_is_the_textbook_formula_on_ranks_for_one_covariate():
    rng = np.random.default_rng(1)
    x, z = rng.normal(size=30), rng.normal(size=30)
    y = x + z + rng.normal(size=30)
    r = lambda a, b: stats.spearmanr(a, b).statistic  # noqa: E731
    want = (r(x, y) - r(x, z) * r(y, z)) / np.sqrt((1 - r(x, z) ** 2) * (1 - r(y, z) ** 2))
    assert dc.partial_spearman(x, y, z) == pytest.approx(want, abs=1e-12)
    assert dc.partial_spearman(x, y, z) != pytest.approx(r(x, y), abs=1e-3)


def test_per_state_spearman_is_that_states_rows_alone():
    rng = np.random.default_rng(2)
    pred = {(st, s.name, c): float(rng.normal()) for st in ("step-1", "step-2") for s in STUDIES
            for c in _contexts()}
    run = _run(rng, pred)
    rows = pd.DataFrame(dc.config_rows(run, n_perm=200))
    for st in ("step-1", "step-2"):
        got = rows[(rows["state"] == st) & (rows["metric"] == "loss") & (rows["pairing"] == "relative")]
        g = run.grid[run.grid["state"] == st].merge(run.validation, on=["study", "context"])
        want = stats.spearmanr(g["diff"], g["delta_loss_ctrl"]).statistic
        assert got["spearman"].iloc[0] == pytest.approx(want)
    assert rows["state"].nunique() == 2 and len(rows) == 2 * 2 * 2


def test_cell_groups_share_out_the_overall_spearman_and_the_study_p_counts_assignments():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=15), rng.normal(size=15)
    assert dc.rank_contributions(x, y).sum() == pytest.approx(stats.spearmanr(x, y).statistic)
    rows = pd.DataFrame(dc.cell_rows(_run(rng, {("step-2", s.name, c): float(rng.normal()) for s in STUDIES
                                                 for c in _contexts()}), n_perm=200))
    em = rows[rows["metric"] == "em"].set_index("group")
    kinds = ["in", "cross", "task, in-task", "task, cross-task"]
    assert em.loc[kinds, "contribution"].sum() == pytest.approx(em.loc["all", "spearman"])
    assert em.loc[kinds, "n_cells"].sum() == 15
    study = np.repeat(["a", "b", "c"], 5)
    per_study = np.repeat([3.0, 2.0, 1.0], 5)
    p = dc.study_permutation_p(per_study, y, study)
    assert 1 / 6 <= p <= 1  # the observed assignment is one of the 3! assignments
    assert np.isnan(dc.study_permutation_p(x, y, study))  # varies within a study: no such p


def test_the_cli_names_the_missing_file_of_a_folder_without_scores(tmp_path, capsys):
    run = tmp_path / "results"
    (run / "validation").mkdir(parents=True)
    for f in ("alignment.csv", "validation.csv"):
        (run / "validation" / f).write_text("study,context\n")
    assert main(["decompose", str(run), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert str(run / "swift" / "scores") in err
    assert not (tmp_path / "out").exists()
    assert main(["decompose", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 1
    assert "nowhere" in capsys.readouterr().err


def test_the_second_protocols_rules_score_the_cells_and_combine_over_runs():
    """`length` is the length ratio minus 1 in every cell of its study, `in-task` is -1 on the
    in-task cells only; over two runs whose headline is that length ratio, the paired
    difference rho(headline) - rho(length) is 0 and the mean is the mean of the runs."""
    from swift_study.alignment.norule import rule_cells, rules_markdown, rules_table

    runs = {"a": _run(np.random.default_rng(0)), "b": _run(np.random.default_rng(1))}
    cells = rule_cells(runs["a"], "em")
    assert len(cells) == len(STUDIES) * len(_contexts())
    for s in STUDIES:
        got = cells.loc[cells["study"] == s.name, "length"]
        mean = {f: np.mean([len(r.response) for r in runs["a"].probes[s.name] if r.format == f])
                for f in (s.strategy, "qa")}
        assert np.allclose(got, mean[s.strategy] / mean["qa"] - 1)
    in_task = [c == "in" or c[5:] in {x.name: x for x in STUDIES}[s].in_task
               for s, c in zip(cells["study"], cells["context"])]
    assert (cells["in-task"] == np.where(in_task, -1.0, 0.0)).all()
    t = rules_table(runs, n_perm=200, n_boot=200)
    em = t[t["metric"] == "em"].set_index(["rule", "run"])
    assert em.loc[("length", "all"), "spearman"] == pytest.approx(np.mean([em.loc[("length", r), "spearman"]
                                                                          for r in runs]))
    assert em.loc[("length", "all"), "diff_vs_headline"] == pytest.approx(0.0, abs=1e-12)
    assert em.loc[("length", "all"), "diff_lo"] <= 0 <= em.loc[("length", "all"), "diff_hi"]
    assert 0 < em.loc[("length", "a"), "p_study"] <= 1
    md = rules_markdown(t, list(runs))
    assert "| length |" in md and "| in-task |" in md and "## outcome `em` (pre-registered)" in md

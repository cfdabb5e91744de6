"""The league table ranks swift configurations by how well they predict the validation effects."""
from __future__ import annotations

import numpy as np
import pandas as pd

from swift_study.report.figures import plot_league
from swift_study.swift.influence import StateScores
from swift_study.data.study import Study
from swift_study.alignment.league import COLUMNS, league_markdown, league_table, score_grid

TASKS = ["A", "B", "C", "D"]


def _states(effect: dict[str, float], noise: float, seed: int) -> list[StateScores]:
    """One study (strategy 'cot', in-task A and B) whose strategy probes' inflow into each
    eval task is ``effect[task]`` (plus noise) above the plain-QA probes'."""
    rng = np.random.default_rng(seed)
    Q, E = 8, 40
    qt = np.array(["A", "B"] * (Q // 2))
    et = np.resize(np.array(TASKS), E)
    shift = np.array([effect[t] for t in et])
    out = []
    for k, lr in enumerate((1e-3, 2e-3)):
        base = rng.normal(1.0, 0.1, (Q, E))
        strat = base + shift[None, :] + rng.normal(0, noise, (Q, E))
        dots = np.vstack([strat, base])
        out.append(StateScores(f"step-{k + 1}", dots, np.ones(2 * Q), np.ones(E), ["cot"] * Q + ["qa"] * Q,
                               np.concatenate([qt, qt]), [f"q{i}" for i in range(Q)] * 2, et, lr=lr))
    return out


def _validation(effect: dict[str, float]) -> pd.DataFrame:
    rows = []
    for t, e in effect.items():
        rows.append(dict(study="s", context=f"task:{t}", delta=e, delta_lo=e - 0.01, delta_hi=e + 0.01,
                         delta_ctrl=e, delta_ctrl_lo=e - 0.01, delta_ctrl_hi=e + 0.01))
    for ctx, e in (("in", 0.2), ("cross", -0.1)):
        rows.append(dict(study="s", context=ctx, delta=e, delta_lo=e - 0.01, delta_hi=e + 0.01,
                         delta_ctrl=e, delta_ctrl_lo=e - 0.01, delta_ctrl_hi=e + 0.01))
    return pd.DataFrame(rows)


def test_a_faithful_configuration_outranks_a_noisy_one(tmp_path):
    effect = {"A": 0.3, "B": 0.1, "C": -0.1, "D": -0.2}
    study = Study("s", "cot", ("A", "B"))
    grid = score_grid({"none": {"s": _states(effect, 0.01, 0)},      # tracks the outcome
                       "adam": {"s": _states({t: 0.0 for t in effect}, 0.5, 1)}},  # pure noise
                      [study], n_boot=20)
    assert {"estimator", "precondition"} <= set(grid.columns)
    league = league_table(grid, _validation(effect), {"estimator": "scalar_projection", "precondition": "adam"},
                          n_perm=2000)
    assert list(league.columns) == list(COLUMNS) and list(league["rank"]) == list(range(1, len(league) + 1))
    # 3 estimators x 2 preconditionings x (2 states + aggregate) x 2 pairings
    assert len(league) == 3 * 2 * 3 * 2
    top = league.head(6)
    assert (top["precondition"] == "none").all() and (top["spearman"] > 0.8).all()
    assert (league["n_cells"] == 6).all()  # in, cross, 4 tasks
    default = league[league["default"]]
    assert len(default) == 2 and set(default["state"]) == {"aggregate"}
    assert (default["precondition"] == "adam").all() and (default["rank"] > 6).all()
    md = league_markdown(league, top=3)
    assert md.count("\n|") >= 3 + 2 and "default" in md
    plot_league(league, tmp_path / "league.png", tmp_path / "league.pdf")
    assert (tmp_path / "league.png").stat().st_size > 0 and (tmp_path / "league.pdf").stat().st_size > 0

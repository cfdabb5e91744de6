"""The comparison table: every predictor against the same retrained ground truth
(``results/alignment/baselines.{csv,md}``; docs/method.md, "Predictors other than
gradients").

Rows: the pre-registered gradient headline, the league's best EK-FAC configuration
(chosen after seeing the league: exploration) and each predictor at its own
pre-registered state (repsim and pilot at the headline state, bm25 on the texts), both
pairings, both outcome metrics (the pre-registered ``validation.metric`` first). Per row:
agreement, Spearman and permutation p over all cells, the in-task verdict per strategy
(the sign of the prediction in the ``in`` cell against the sign of the measured effect),
the seconds of compute, and the paired difference of Spearman between the gradient
headline and that row over the cells both have, with a percentile bootstrap interval
over cells.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..predictors.registry import PREDICTORS, TEXT_STATE
from .league import GRADIENT
from .stats import PAIRINGS, alignment_stats, merge_swift_validation, sign, spearman, spearman_rows

COLUMNS: tuple[str, ...] = (
    "metric", "pairing", "row", "predictor", "estimator", "precondition", "state", "n_cells", "n_agree",
    "agreement_rate", "spearman", "p_value", "diff_vs_headline", "diff_lo", "diff_hi", "in_task_right",
    "in_task_verdicts", "seconds",
)


@dataclass(frozen=True)
class Config:
    """One compared configuration: a label and its rows in the league's score grid."""

    row: str
    predictor: str
    estimator: str
    precondition: str
    state: str


def compared_configs(league: pd.DataFrame, default: Mapping[str, str], headline_state: str) -> list[Config]:
    """The gradient headline, the league's best EK-FAC row and every predictor in the league."""
    out = [Config("gradient headline (pre-registered)", GRADIENT, default["estimator"], default["precondition"],
                  default["state"])]
    ek = league[(league["predictor"] == GRADIENT) & (league["precondition"] == "ekfac")]
    if len(ek):
        b = ek.iloc[0]
        out.append(Config("best EK-FAC row (league, exploratory)", GRADIENT, b["estimator"], "ekfac", b["state"]))
    for name in dict.fromkeys(league.loc[league["predictor"] != GRADIENT, "predictor"]):
        states = league.loc[league["predictor"] == name, "state"].drop_duplicates().tolist()
        state = headline_state if headline_state in states else (TEXT_STATE if TEXT_STATE in states else states[0])
        out.append(Config(name, name, PREDICTORS[name].estimator, "none", state))
    return out


def with_metric(validation: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The validation table with ``delta``/``delta_ctrl`` (and intervals) taken from ``metric``'s columns."""
    out = validation.copy()
    for s in ("", "_lo", "_hi"):
        out[f"delta{s}"] = validation[f"delta_{metric}{s}"]
        out[f"delta_ctrl{s}"] = validation[f"delta_{metric}_ctrl{s}"]
    return out


def _rows(grid: pd.DataFrame, c: Config) -> pd.DataFrame:
    pred = grid["predictor"] if "predictor" in grid else pd.Series(GRADIENT, index=grid.index)
    return grid[(pred == c.predictor) & (grid["estimator"] == c.estimator) & (grid["precondition"] == c.precondition)]


def paired_spearman_diff(a: pd.DataFrame, b: pd.DataFrame, n_boot: int = 2000, seed: int = 0,
                         confidence: float = 0.95) -> tuple[float, float, float]:
    """``rho(a) - rho(b)`` over the cells both alignment tables hold (same outcome on both
    sides), with a percentile interval from resampling those cells with replacement."""
    m = a[["study", "context", "prediction", "delta"]].merge(b[["study", "context", "prediction"]],
                                                              on=["study", "context"], suffixes=("_a", "_b"))
    m = m[np.isfinite(m[["prediction_a", "prediction_b", "delta"]].to_numpy(dtype=float)).all(axis=1)]
    x, y, d = (m[c].to_numpy(dtype=float) for c in ("prediction_a", "prediction_b", "delta"))
    point = spearman(x, d) - spearman(y, d)
    if len(m) < 3 or n_boot <= 0:
        return point, float("nan"), float("nan")
    i = np.random.default_rng(seed).integers(0, len(m), (n_boot, len(m)))  # the resamples, row by row
    reps = spearman_rows(x[i], d[i]) - spearman_rows(y[i], d[i])
    reps = reps[np.isfinite(reps)]
    if not reps.size:
        return point, float("nan"), float("nan")
    a_ = (1 - confidence) / 2
    lo, hi = np.quantile(reps, [a_, 1 - a_])
    return float(point), float(lo), float(hi)


def in_task_verdicts(t: pd.DataFrame) -> tuple[str, str]:
    """``("right/total", "study: predicted/measured sign mark, ...")`` over the ``in`` cells."""
    cells = t[t["context"] == "in"]
    marks, right = [], 0
    for _, r in cells.iterrows():
        ps, ms = sign(r["prediction"]), sign(r["delta"])
        ok = ps == ms and not np.isnan(ps)
        right += int(ok)
        sym = {1.0: "+", -1.0: "−", 0.0: "0"}
        marks.append(f"{r['study']} {sym.get(ps, '?')}/{sym.get(ms, '?')} {'✓' if ok else '✗'}")
    return f"{right}/{len(cells)}", ", ".join(marks)


def baselines_table(grid: pd.DataFrame, validation: pd.DataFrame, configs: Sequence[Config],
                    metrics: Sequence[str], seconds: Mapping[tuple[str, str], float] | None = None,
                    n_perm: int = 10000, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per (metric, pairing, configuration) (:data:`COLUMNS`); the first config is
    the headline the paired differences are taken against."""
    seconds = seconds or {}
    rows = []
    for metric in metrics:
        val = with_metric(validation, metric)
        for pairing in PAIRINGS:
            tables = [merge_swift_validation(_rows(grid, c), val, state=c.state, pairing=pairing) for c in configs]
            for i, (c, t) in enumerate(zip(configs, tables)):
                s = alignment_stats(t, n_perm=n_perm, seed=seed)
                diff = (0.0, float("nan"), float("nan")) if i == 0 else paired_spearman_diff(
                    tables[0], t, n_boot=n_boot, seed=seed)
                right, verdicts = in_task_verdicts(t)
                rows.append(dict(metric=metric, pairing=pairing, row=c.row, predictor=c.predictor,
                                 estimator=c.estimator, precondition=c.precondition, state=c.state,
                                 n_cells=s["n_cells"], n_agree=s["n_agree"], agreement_rate=s["agreement_rate"],
                                 spearman=s["spearman"], p_value=s["p_value"], diff_vs_headline=diff[0],
                                 diff_lo=diff[1], diff_hi=diff[2], in_task_right=right, in_task_verdicts=verdicts,
                                 seconds=float(seconds.get((c.predictor, c.precondition), np.nan))))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _num(v, fmt: str = ".2f") -> str:
    return "–" if not np.isfinite(float(v)) else format(float(v), fmt)


def _diff_cell(r) -> str:
    """The paired difference and its interval, or a dash on the headline's own row."""
    if r["row"].startswith("gradient headline"):
        return "—"
    return f"{_num(r['diff_vs_headline'], '+.2f')} [{_num(r['diff_lo'], '+.2f')}, {_num(r['diff_hi'], '+.2f')}]"


def _sections(table: pd.DataFrame, pre_metric: str, header: str, line) -> list[str]:
    """One Markdown table per (metric, pairing), the pre-registered outcome tagged."""
    out = []
    for (metric, pairing), g in table.groupby(["metric", "pairing"], sort=False):
        tag = " (pre-registered outcome)" if metric == pre_metric and pairing == "relative" else ""
        out += [f"## outcome `{metric}`, pairing `{pairing}`{tag}", "", header,
                "|" + "---|" * header.count(" | ") + "---|"]
        out += [line(r) for _, r in g.iterrows()]
        out.append("")
    return out


def baselines_markdown(table: pd.DataFrame, pre_metric: str) -> str:
    """The comparison as Markdown: one table per (metric, pairing), the pre-registered first."""

    out = ["# Is the swift study worth it? Every predictor on the same retrained cells", "",
           "Spearman of each predictor's per-cell prediction against the retrained effect over all cells "
           "(studies x in, cross, each task), two-sided permutation p, agreement of signs, the in-task "
           "verdict per strategy (predicted/measured sign), seconds of compute (Snakemake benchmark files "
           "of its jobs), and the paired difference rho(headline) − rho(row) with a 95% bootstrap interval "
           "over cells (> 0: the gradient headline ranks the cells better). The EK-FAC row is the league's "
           "best, chosen after seeing it (exploration); the others are fixed in advance (docs/method.md).", ""]
    out += _sections(table, pre_metric,
                     "| row | state | agree | Spearman | p | rho(headline) − rho(row) [95% CI] | in-task right | "
                     "in-task verdicts | seconds |",
                     lambda r: f"| {r['row']} | {r['state']} | {r['n_agree']}/{r['n_cells']} | {_num(r['spearman'])} | "
                               f"{_num(r['p_value'], '.3f')} | {_diff_cell(r)} | {r['in_task_right']} | "
                               f"{r['in_task_verdicts']} | {_num(r['seconds'], '.0f')} |")
    return "\n".join(out)


# ------------------------------------------------------------------ over replicates


def load_run(results_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``(league_scores.csv, validation.csv, league.csv)`` of one finished results directory."""
    from pathlib import Path as _P

    from ..core.errors import DataError

    d = _P(results_dir)
    files = [d / "alignment" / "league_scores.csv", d / "validation" / "validation.csv", d / "alignment" / "league.csv"]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise DataError(f"{d}: no {', '.join(missing)}: run the whole study there first")
    return tuple(pd.read_csv(f) for f in files)  # type: ignore[return-value]


def _aligned(tables: Sequence[pd.DataFrame]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per replicate ``(headline prediction, row prediction, effect)`` over the cells both hold."""
    out = []
    for head, row in tables:
        m = head[["study", "context", "prediction", "delta"]].merge(
            row[["study", "context", "prediction"]], on=["study", "context"], suffixes=("_a", "_b"))
        v = m[["prediction_a", "prediction_b", "delta"]].to_numpy(dtype=float)
        v = v[np.isfinite(v).all(axis=1)]
        out.append((v[:, 0], v[:, 1], v[:, 2]))
    return out


def pooled_spearman_diff(per_rep: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], n_boot: int = 2000,
                         seed: int = 0, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean over replicates of ``rho(headline) - rho(row)``, with a percentile interval from
    resampling cells with replacement within each replicate."""
    def stat(idx):
        vals = [spearman(a[i], d[i]) - spearman(b[i], d[i]) for (a, b, d), i in zip(per_rep, idx)]
        vals = [v for v in vals if np.isfinite(v)]
        return float(np.mean(vals)) if vals else float("nan")

    point = stat([np.arange(len(d)) for _, _, d in per_rep])
    rng = np.random.default_rng(seed)
    reps = np.array([stat([rng.integers(0, len(d), len(d)) for _, _, d in per_rep]) for _ in range(n_boot)])
    reps = reps[np.isfinite(reps)]
    if not reps.size:
        return point, float("nan"), float("nan")
    a_ = (1 - confidence) / 2
    lo, hi = np.quantile(reps, [a_, 1 - a_])
    return point, float(lo), float(hi)


def combined_baselines(runs: Mapping[str, str | Path], default: Mapping[str, str], metrics: Sequence[str],
                       n_perm: int = 10000, n_boot: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(per replicate, combined)`` comparison of every predictor over whole-study seeds.

    Per replicate: :func:`baselines_table` of that run (its headline state is its league's
    default row). Combined, per (metric, pairing, row): the mean Spearman over replicates
    and the stratified permutation p (predictions permuted within each replicate, as
    ``swift-study replicate`` tests the headline), agreement and in-task verdicts summed,
    and :func:`pooled_spearman_diff` against the gradient headline.
    """
    from .replicates import stratified_permutation_p

    per, tables = [], {}
    for label, d in runs.items():
        grid, val, league = load_run(d)
        state = str(league.loc[league["default"].astype(bool), "state"].iloc[0])
        configs = compared_configs(league, {**default, "state": state}, state)
        seconds = {(r.predictor, r.precondition): r.seconds
                   for r in league.drop_duplicates(["predictor", "precondition"]).itertuples()}
        per.append(baselines_table(grid, val, configs, metrics, seconds=seconds, n_perm=n_perm, n_boot=n_boot,
                                   seed=seed).assign(replicate=str(label)))
        for metric in metrics:
            v = with_metric(val, metric)
            for pairing in PAIRINGS:
                for c in configs:
                    tables[(metric, pairing, c.row, str(label))] = merge_swift_validation(
                        _rows(grid, c), v, state=c.state, pairing=pairing)
    per_df = pd.concat(per, ignore_index=True)
    rows = []
    head_row = per_df["row"].iloc[0]
    for (metric, pairing, row), g in per_df.groupby(["metric", "pairing", "row"], sort=False):
        labels = [str(x) for x in g["replicate"]]
        pairs = [(tables[(metric, pairing, row, lb)]["prediction"].to_numpy(float),
                  tables[(metric, pairing, row, lb)]["delta"].to_numpy(float)) for lb in labels]
        rho, p = stratified_permutation_p(pairs, n_perm=n_perm, seed=seed)
        if row == head_row:
            diff = (0.0, float("nan"), float("nan"))
        else:
            diff = pooled_spearman_diff(_aligned([(tables[(metric, pairing, head_row, lb)],
                                                   tables[(metric, pairing, row, lb)]) for lb in labels]),
                                        n_boot=n_boot, seed=seed)
        right = [tuple(map(int, s.split("/"))) for s in g["in_task_right"]]
        rows.append(dict(metric=metric, pairing=pairing, row=row, replicates=len(labels),
                         n_cells=int(g["n_cells"].sum()), n_agree=int(g["n_agree"].sum()),
                         agreement_rate=float(g["n_agree"].sum() / max(g["n_cells"].sum(), 1)),
                         mean_spearman=rho, stratified_permutation_p=p,
                         per_replicate_spearman=" ".join(f"{x:+.2f}" for x in g["spearman"]),
                         diff_vs_headline=diff[0], diff_lo=diff[1], diff_hi=diff[2],
                         in_task_right=f"{sum(r for r, _ in right)}/{sum(n for _, n in right)}",
                         mean_seconds=float(g["seconds"].mean())))
    return per_df, pd.DataFrame(rows)


def combined_markdown(combined: pd.DataFrame, pre_metric: str, labels: Sequence[str]) -> str:
    """The combined comparison over replicates as Markdown (pre-registered outcome first)."""

    out = [f"# Predictors over whole-study replicates ({', '.join(labels)})", "",
           "Mean Spearman over replicates of each predictor's per-cell prediction against the retrained "
           "effect, stratified permutation p (predictions permuted within each replicate), agreement and "
           "in-task verdicts summed, and the pooled paired difference rho(headline) − rho(row) with a 95% "
           "bootstrap interval (cells resampled within each replicate).", ""]
    out += _sections(combined, pre_metric,
                     "| row | agree | mean Spearman | per replicate | stratified p | rho(headline) − rho(row) "
                     "[95% CI] | in-task right | mean seconds |",
                     lambda r: f"| {r['row']} | {r['n_agree']}/{r['n_cells']} | {_num(r['mean_spearman'])} | "
                               f"{r['per_replicate_spearman']} | {_num(r['stratified_permutation_p'], '.4f')} | "
                               f"{_diff_cell(r)} | {r['in_task_right']} | {_num(r['mean_seconds'], '.0f')} |")
    return "\n".join(out)

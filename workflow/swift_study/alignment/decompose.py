"""What carries the gradient headline? Its per-cell prediction ``d`` decomposed by model
state, estimator normalisation, probe property and cell (issue 29; ``swift-study
decompose``, docs/decompose.md).

From what a finished run stored (``validation/alignment.csv`` and ``validation.csv``
through :func:`~swift_study.alignment.replicates.load_replicate`,
``alignment/league_scores.csv`` and ``league.csv`` through
:func:`~swift_study.alignment.baselines.load_run`, the headline's probe x eval products
``swift/scores/<study>_influence.npz``, the probes ``data/studies/<study>/probes.jsonl``):

``config`` rows
    every gradient configuration of the league (estimator x preconditioning x state),
    both pairings, both outcomes (``em``, ``loss``): which state and which normalisation
    carries the agreement.
``property`` rows
    per study, the strategy probes' and the matched plain-QA probes' means of a probe
    property (the headline's probe gradient norm at each state, response length in
    characters and tokens, response lines) and their ratio.
``predictor`` rows
    a property scored exactly like a predictor (relative pairing, all cells): the
    pair-weighted mean of the property over each cell's pairs (strategy minus baseline,
    and the ratio minus 1), and the split of the headline ``d = mean_S n c - mean_B n c``
    (``n`` the probe norm, ``c`` the cosine to the eval example) into a norm part
    ``(n_S - n_B)(c_S + c_B)/2``, a direction part ``(c_S - c_B)(n_S + n_B)/2`` and
    the rest; with each, the headline's partial Spearman once the property is partialled
    out (correlation of rank residuals); ``study (format)``, ``in-task cell`` and ``study x
    in-task cell`` partial out the study, whether the cell is in-task, and both crossed;
    ``in-task cell: -1`` is a prediction that needs no model (every in-task cell is hurt).
``cells`` rows
    the headline over groups of cells (``in``, ``cross``, in-task and cross-task
    ``task:`` cells, each study, each task): agreement and Spearman within the group,
    and its share of the overall Spearman (standardised rank products over all cells,
    which sum to rho), and rho without the group's study.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .baselines import load_run, with_metric
from .league import GRADIENT
from .replicates import load_replicate
from .stats import PAIRINGS, alignment_stats, alignment_table, merge_swift_validation, spearman
from ..core.errors import DataError
from ..data.records import Record, read_jsonl
from ..data.study import Study
from ..model.states import AGGREGATE
from ..swift.features import products_scores
from ..swift.influence import ScoreArgs, StateScores, score_study

METRICS: tuple[str, ...] = ("em", "loss")
COLUMNS: tuple[str, ...] = (
    "run", "section", "metric", "pairing", "name", "estimator", "precondition", "state", "group", "n_cells",
    "n_agree", "agreement_rate", "spearman", "p_value", "p_study", "partial_spearman", "contribution", "strategy_value",
    "baseline_value", "ratio",
)


@dataclass
class RunData:
    """What :func:`load_run_data` reads from one finished results folder."""

    path: Path
    label: str
    validation: pd.DataFrame
    grid: pd.DataFrame
    headline: dict[str, str]
    studies: list[Study]
    probes: dict[str, list[Record]]
    influence: dict[str, list[StateScores]]
    tokens: dict[str, np.ndarray]


def _need(path: Path) -> Path:
    if not path.exists():
        raise DataError(f"{path}: no such file: run the whole study there first")
    return path


def _studies(validation: pd.DataFrame) -> list[Study]:
    """The studies, their strategies and in-task tasks, as the validation table records them."""
    out = []
    for name, g in validation.groupby("study", sort=False):
        tasks = g[g["context"].str.startswith("task:") & g["in_task"].astype(bool)]["context"]
        out.append(Study(str(name), str(g["strategy"].iloc[0]), tuple(t[5:] for t in tasks)))
    return out


def _influence(d: Path, study: Study, probes: list[Record], evals: list[Record]) -> list[StateScores]:
    """The headline's stored products of one study (``swift/scores/<study>_influence.npz``) as
    :class:`StateScores`, one per state, with the learning rates of ``<study>.csv``."""
    scores = pd.read_csv(_need(d / "swift" / "scores" / f"{study.name}.csv"))
    path = _need(d / "swift" / "scores" / f"{study.name}_influence.npz")
    with np.load(path, allow_pickle=False) as z:
        if list(z["probe_ids"]) != [r.id for r in probes] or list(z["eval_ids"]) != [r.id for r in evals]:
            raise DataError(f"{path}: its probe or eval ids are not those of the run's probes.jsonl / eval qa.jsonl")
        out = []
        for state in [k[:-5] for k in z.files if k.endswith("/dots")]:
            lr = scores.loc[scores["state"] == state, "lr"]
            lr = float(lr.iloc[0]) if len(lr) and np.isfinite(lr.iloc[0]) else None
            out.append(products_scores(state, lr, z[f"{state}/dots"], z[f"{state}/probe_norms"],
                                       z[f"{state}/eval_norms"], probes, evals))
    return out


def _token_counts(d: Path, probes: dict[str, list[Record]]) -> dict[str, np.ndarray]:
    """Response tokens of every probe with the run's tokenizer (``model/warmup``); {} without one."""
    tok_dir = d / "model" / "warmup"
    if not (tok_dir / "tokenizer.json").exists():
        return {}
    from ..model.tokenizer import load_tokenizer

    tok = load_tokenizer(tok_dir)
    return {s: np.array([len(tok(r.response, add_special_tokens=False)["input_ids"]) for r in recs], dtype=float)
            for s, recs in probes.items()}


def load_run_data(results_dir: str | Path) -> RunData:
    """Everything the decomposition reads from one finished results folder; a missing file is
    a :class:`DataError` naming it."""
    d = Path(results_dir)
    if not d.is_dir():
        raise DataError(f"{d}: no such results folder")
    _need(d / "swift" / "scores")
    load_replicate(d)  # alignment.csv and validation.csv are there
    grid, validation, league = load_run(d)
    row = league[league["default"].astype(bool)]
    if not len(row):
        raise DataError(f"{d / 'alignment' / 'league.csv'}: no default (headline) row")
    headline = {k: str(row[k].iloc[0]) for k in ("estimator", "precondition", "state")}
    studies = _studies(validation)
    evals = read_jsonl(_need(d / "data" / "eval" / "qa.jsonl"))
    probes = {s.name: read_jsonl(_need(d / "data" / "studies" / s.name / "probes.jsonl")) for s in studies}
    influence = {s.name: _influence(d, s, probes[s.name], evals) for s in studies}
    seed = grid["seed"].dropna()
    label = f"seed-{int(seed.iloc[0])}" if len(seed) else d.name
    return RunData(d, label, validation, grid, headline, studies, probes, influence, _token_counts(d, probes))


# ---------------------------------------------------------------------------- statistics


def partial_spearman(x: Any, y: Any, covariates: Any) -> float:
    """Spearman's rho of ``x`` and ``y`` with ``covariates`` (columns) partialled out: the
    Pearson correlation of the residuals of rank(x) and rank(y) after a least-squares fit on
    an intercept and the covariates' ranks. 0 when the covariates explain the ranks of ``x``
    (or ``y``) entirely (nothing is left to correlate); NaN below 4 finite cells."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    z = np.asarray(covariates, dtype=float).reshape(len(x), -1)
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(z).all(axis=1)
    if ok.sum() < 4:
        return float("nan")
    design = np.column_stack([np.ones(ok.sum())] + [stats.rankdata(c) for c in z[ok].T])
    res = []
    for v in (x[ok], y[ok]):
        r = stats.rankdata(v)
        res.append(r - design @ np.linalg.lstsq(design, r, rcond=None)[0])
    if min(np.linalg.norm(r) for r in res) < 1e-9 * len(res[0]):
        return 0.0
    return float(np.corrcoef(res[0], res[1])[0, 1])


def study_permutation_p(pred: Any, delta: Any, study: Any) -> float:
    """For a prediction that is one value per study: the share of the k! assignments of those
    values to the k studies whose |Spearman| with ``delta`` is at least the observed one (the
    cell permutation p treats a study's cells as exchangeable; they are not). NaN for a
    prediction that varies within a study or for more than 8 studies."""
    import itertools

    pred, delta, study = np.asarray(pred, float), np.asarray(delta, float), np.asarray(study).astype(str)
    names = list(dict.fromkeys(study))
    values = []
    for n in names:
        v = pred[study == n]
        if not np.allclose(v, v[0], rtol=1e-9, atol=1e-12):
            return float("nan")
        values.append(v[0])
    if len(names) > 8:
        return float("nan")
    idx = np.array([names.index(n) for n in study])
    rho = spearman(np.asarray(values)[idx], delta)
    rhos = [spearman(np.asarray(perm)[idx], delta) for perm in itertools.permutations(values)]
    return float(np.mean(np.abs(rhos) >= abs(rho) - 1e-12)) if np.isfinite(rho) else float("nan")


def rank_contributions(x: Any, y: Any) -> np.ndarray:
    """Each cell's share of Spearman's rho: products of the centred, unit-norm ranks (they sum
    to rho over the finite cells; NaN elsewhere)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    out = np.full(x.shape, np.nan)
    ok = np.isfinite(x) & np.isfinite(y)
    rx, ry = (stats.rankdata(v[ok]) for v in (x, y))
    rx, ry = rx - rx.mean(), ry - ry.mean()
    if np.linalg.norm(rx) and np.linalg.norm(ry):
        out[ok] = rx / np.linalg.norm(rx) * ry / np.linalg.norm(ry)
    return out


def _scored(table: pd.DataFrame, n_perm: int, seed: int) -> dict[str, Any]:
    s = alignment_stats(table, n_perm=n_perm, seed=seed)
    return {k: s[k] for k in ("n_cells", "n_agree", "agreement_rate", "spearman", "p_value")}


def _outcome(run: RunData, metric: str) -> pd.DataFrame:
    return with_metric(run.validation, metric)


def _headline_table(run: RunData, metric: str, pairing: str = "relative") -> pd.DataFrame:
    """The headline configuration's alignment table on ``metric``."""
    h = run.headline
    g = run.grid[(run.grid["predictor"] == GRADIENT) & (run.grid["estimator"] == h["estimator"])
                 & (run.grid["precondition"] == h["precondition"])]
    return merge_swift_validation(g, _outcome(run, metric), state=h["state"], pairing=pairing)


# ------------------------------------------------------------------------------ sections


def config_rows(run: RunData, n_perm: int = 10000, seed: int = 0) -> list[dict[str, Any]]:
    """Every gradient configuration of the league on both pairings and both outcomes."""
    rows = []
    g = run.grid[run.grid["predictor"] == GRADIENT]
    for (est, pre), sub in g.groupby(["estimator", "precondition"], sort=False):
        for state in sub["state"].drop_duplicates():
            for metric in METRICS:
                for pairing in PAIRINGS:
                    t = merge_swift_validation(sub, _outcome(run, metric), state=state, pairing=pairing)
                    rows.append(dict(section="config", metric=metric, pairing=pairing, name=f"{est}/{pre}",
                                     estimator=est, precondition=pre, state=state, group="all",
                                     **_scored(t, n_perm, seed)))
    return rows


def _probe_values(run: RunData, study: Study) -> dict[str, np.ndarray]:
    """Per probe (rows of probes.jsonl): the properties the section compares."""
    recs = run.probes[study.name]
    out = {"chars": np.array([len(r.response) for r in recs], dtype=float),
           "lines": np.array([r.response.count("\n") + 1 for r in recs], dtype=float)}
    if study.name in run.tokens:
        out["tokens"] = run.tokens[study.name]
    for st in run.influence[study.name]:
        out[f"norm@{st.state}"] = st.probe_norms
    return out


def property_rows(run: RunData) -> list[dict[str, Any]]:
    """Per study and property: the strategy probes' mean, the matched baseline's and the ratio."""
    rows = []
    for study in run.studies:
        fmt = np.array([r.format for r in run.probes[study.name]])
        for name, v in _probe_values(run, study).items():
            s, b = float(v[fmt == study.strategy].mean()), float(v[fmt == study.baseline].mean())
            rows.append(dict(section="property", name=name, group=study.name, strategy_value=s, baseline_value=b,
                             ratio=s / b if b else float("nan")))
    return rows


def _with_property(st: StateScores, values: np.ndarray) -> StateScores:
    """``st`` with every pair's product replaced by ``values[p] * ||g(e)||``: its scalar
    projection is the property's pair-weighted mean."""
    return StateScores(st.state, np.outer(values, st.eval_norms), values, st.eval_norms, st.probe_format,
                       st.probe_task, st.probe_query, st.eval_task, st.eval_id, st.lr)


def _score(states: dict[str, list[StateScores]], run: RunData, estimator: str, state: str) -> pd.DataFrame:
    args = ScoreArgs(estimator=estimator, n_boot=0, seed=0)
    df = pd.concat([score_study(states[s.name], s, args) for s in run.studies], ignore_index=True)
    return df[df["state"] == state].set_index(["study", "context"])


def property_predictions(run: RunData) -> dict[str, pd.Series]:
    """Cell predictions (index study, context) of the properties and of the headline's parts,
    at the headline state (the stored products are the headline's preconditioning)."""
    h = run.headline
    state = h["state"] if h["state"] != AGGREGATE else run.influence[run.studies[0].name][-1].state
    last = {s.name: [st for st in run.influence[s.name] if st.state == state] for s in run.studies}
    cos = _score(last, run, "cosine", state)
    norm = _score({k: [_with_property(v[0], v[0].probe_norms)] for k, v in last.items()}, run,
                  "scalar_projection", state)
    head = _score(last, run, h["estimator"], state)
    out = {"headline (recomputed)": head["diff"], "norm: S - B": norm["diff"], "norm: S / B": norm["relinf"] - 1,
           "cosine: S - B": cos["diff"]}
    parts = {"norm part": (norm["diff"]) * (cos["s_strategy"] + cos["s_baseline"]) / 2,
             "direction part": (cos["diff"]) * (norm["s_strategy"] + norm["s_baseline"]) / 2}
    out.update(parts)
    out["rest (covariance)"] = head["diff"] - parts["norm part"] - parts["direction part"]
    for prop in ("chars", "tokens", "lines"):
        vals = {s.name: _probe_values(run, s).get(prop) for s in run.studies}
        if any(v is None for v in vals.values()):
            continue
        sc = _score({k: [_with_property(last[k][0], v)] for k, v in vals.items()}, run, "scalar_projection", state)
        out[f"{prop}: S - B"], out[f"{prop}: S / B"] = sc["diff"], sc["relinf"] - 1
    return out


def cells_frame(run: RunData, metric: str) -> pd.DataFrame:
    """The headline's relative alignment table of ``metric`` with the cell's groups."""
    t = _headline_table(run, metric)
    studies = {s.name: s for s in run.studies}
    kind = []
    for st, ctx in zip(t["study"], t["context"]):
        if ctx in ("in", "cross"):
            kind.append(ctx)
        else:
            kind.append("task, in-task" if ctx[5:] in studies[st].in_task else "task, cross-task")
    return t.assign(kind=kind)


def cell_covariates(t: pd.DataFrame) -> dict[str, np.ndarray]:
    """Covariates of the cells themselves: the study (its format), whether the cell is in-task,
    and the two crossed (one group per study and in-task / cross-task)."""
    study = pd.get_dummies(t["study"]).to_numpy(dtype=float)[:, 1:]
    in_task = t["kind"].isin(["in", "task, in-task"]).to_numpy(dtype=float)[:, None]
    return {"study (format)": study, "in-task cell": in_task,
            "study x in-task cell": np.column_stack([study, in_task, study * in_task])}


def predictor_rows(run: RunData, n_perm: int = 10000, seed: int = 0) -> list[dict[str, Any]]:
    """Each property prediction scored like a predictor (relative pairing), with the headline's
    partial Spearman once that property is partialled out; then the cell covariates
    (:func:`cell_covariates`) partialled out, and ``in-task cell: -1`` (a prediction that
    every in-task cell is hurt, every other cell unchanged) scored like a predictor."""
    preds = property_predictions(run)
    rows = []
    for metric in METRICS:
        t = cells_frame(run, metric)
        key = pd.MultiIndex.from_frame(t[["study", "context"]])
        cov = cell_covariates(t)
        cells = {**{k: v.reindex(key).to_numpy(dtype=float) for k, v in preds.items()},
                 "in-task cell: -1": -cov["in-task cell"][:, 0]}
        for name, p in cells.items():
            tab = alignment_table(t[["study", "context", "relinf", "delta"]].assign(prediction=p))
            rows.append(dict(section="predictor", metric=metric, pairing="relative", name=name,
                             state=run.headline["state"], group="all", **_scored(tab, n_perm, seed),
                             p_study=study_permutation_p(p, t["delta"], t["study"]),
                             partial_spearman=partial_spearman(t["prediction"], t["delta"], p)))
        for name, z in cov.items():
            rows.append(dict(section="predictor", metric=metric, pairing="relative", name=name,
                             state=run.headline["state"], group="all",
                             partial_spearman=partial_spearman(t["prediction"], t["delta"], z)))
    return rows


def cell_rows(run: RunData, n_perm: int = 10000, seed: int = 0) -> list[dict[str, Any]]:
    """The headline over groups of cells: within-group agreement and Spearman, the group's
    share of the overall rho, rho over the other studies' cells (group ``without <study>``), and
    rho of the studies' mean prediction against their mean effect (``between studies``, one point
    per study)."""
    rows = []
    for metric in METRICS:
        t = cells_frame(run, metric)
        contrib = rank_contributions(t["prediction"], t["delta"])
        groups: list[tuple[str, np.ndarray]] = [("all", np.ones(len(t), bool))]
        groups += [(k, (t["kind"] == k).to_numpy()) for k in ("in", "cross", "task, in-task", "task, cross-task")]
        groups += [(f"study {s}", (t["study"] == s).to_numpy()) for s in t["study"].drop_duplicates()]
        groups += [(f"without {s}", (t["study"] != s).to_numpy()) for s in t["study"].drop_duplicates()]
        groups += [(c, (t["context"] == c).to_numpy()) for c in sorted(t["context"].unique()) if c.startswith("task:")]
        for name, m in groups:
            rows.append(dict(section="cells", metric=metric, pairing="relative", name="headline",
                             state=run.headline["state"], group=name, **_scored(t[m], n_perm, seed),
                             contribution=float(np.nansum(contrib[m])) if not name.startswith("without") else np.nan))
        means = t.groupby("study", sort=False)[["prediction", "delta"]].mean()
        rows.append(dict(section="cells", metric=metric, pairing="relative", name="headline",
                         state=run.headline["state"], group="between studies", n_cells=len(means),
                         spearman=spearman(means["prediction"], means["delta"])))
    return rows


def decompose_run(run: RunData, n_perm: int = 10000, seed: int = 0) -> pd.DataFrame:
    """All four sections of one run (:data:`COLUMNS`)."""
    rows = [*config_rows(run, n_perm, seed), *property_rows(run), *predictor_rows(run, n_perm, seed),
            *cell_rows(run, n_perm, seed)]
    return pd.DataFrame(rows).assign(run=run.label).reindex(columns=list(COLUMNS))


# ------------------------------------------------------------------------------ markdown


def _f(v: Any, fmt: str = "+.2f") -> str:
    try:
        return "–" if not np.isfinite(float(v)) else format(float(v), fmt)
    except (TypeError, ValueError):
        return "–"


def _pick(df: pd.DataFrame, **kw: Any) -> pd.DataFrame:
    m = np.ones(len(df), bool)
    for k, v in kw.items():
        m &= (df[k] == v).to_numpy()
    return df[m]


def _rho(df: pd.DataFrame, **kw: Any) -> float:
    r = _pick(df, **kw)
    return float(r["spearman"].iloc[0]) if len(r) else float("nan")


def summary_table(df: pd.DataFrame, headline: dict[str, dict[str, str]]) -> pd.DataFrame:
    """One row per run: the findings (em outcome, relative pairing)."""
    rows = []
    for run, g in df.groupby("run", sort=False):
        h = headline[run]
        conf = _pick(g, section="config", metric="em", pairing="relative")
        mine = conf[(conf["estimator"] == h["estimator"]) & (conf["precondition"] == h["precondition"])]
        row: dict[str, Any] = {"run": run, "headline": _rho(mine, state=h["state"])}
        for st in mine["state"]:
            row[f"{h['precondition']} {st}"] = _rho(mine, state=st)
        row["none base"] = _rho(conf, estimator=h["estimator"], precondition="none", state="base")
        at = conf[conf["state"] == h["state"]].sort_values("spearman", ascending=False)
        row["best normalisation at the headline state"] = (
            f"{at['name'].iloc[0]} {_f(at['spearman'].iloc[0])}" if len(at) else "–")
        pr = _pick(g, section="predictor", metric="em")
        for name in ("norm: S / B", "chars: S / B", "norm part", "direction part", "in-task cell: -1"):
            row[f"rho({name})"] = _rho(pr, name=name)
        for name in ("norm: S / B", "chars: S / B", "study (format)", "study x in-task cell"):
            r = _pick(pr, name=name)
            row[f"headline without {name}"] = float(r["partial_spearman"].iloc[0]) if len(r) else float("nan")
        cells = _pick(g, section="cells", metric="em").set_index("group")
        for k in ("in", "cross", "task, in-task", "task, cross-task"):
            row[f"share: {k}"] = float(cells.loc[k, "contribution"]) if k in cells.index else float("nan")
        row["between studies"] = float(cells.loc["between studies", "spearman"]) if "between studies" in cells.index \
            else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def _run_section(g: pd.DataFrame, run: str, path: str, h: dict[str, str]) -> list[str]:
    conf = _pick(g, section="config")
    piv = conf.assign(col=conf["metric"] + " " + conf["pairing"]).pivot_table(
        index=["estimator", "precondition", "state"], columns="col", values="spearman", sort=False).reset_index()
    prop = _pick(g, section="property").pivot_table(index="name", columns="group", values="ratio", sort=False)
    pr = _pick(g, section="predictor")
    pr = pr.assign(cell=[(f"{_f(s)} ({int(a)}/{int(n)}" + (f"; study p {q:.2f})" if np.isfinite(q) else ")"))
                         if np.isfinite(s) else "–" for s, a, n, q in
                         zip(pr["spearman"], pr["n_agree"].fillna(0), pr["n_cells"].fillna(0), pr["p_study"])])
    prt = pr.pivot_table(index="name", columns="metric", values=["partial_spearman"], sort=False)
    prt.columns = [f"headline, property partialled out ({m})" for _, m in prt.columns]
    prt = pr.pivot_table(index="name", columns="metric", values="cell", aggfunc="first", sort=False).join(prt)
    cells = _pick(g, section="cells", metric="em")
    return [
        f"## {run}", "", f"`{path}`; headline: {h['estimator']} / {h['precondition']} / {h['state']}, relative.", "",
        "### Spearman per configuration (estimator x preconditioning x state; outcome and pairing)", "",
        piv.to_markdown(index=False, floatfmt="+.2f"), "",
        "### Probe properties: strategy mean / matched plain-QA mean, per study", "",
        prop.to_markdown(floatfmt=".2f"), "",
        "### Properties scored as predictors (relative pairing; Spearman (agree/cells; for a prediction "
        "constant within each study, the p over the assignments of its values to the studies)) and the "
        "headline after partialling each out", "",
        prt.reset_index().to_markdown(index=False, floatfmt="+.2f"), "",
        "### The headline over groups of cells (em, relative)", "",
        cells[["group", "n_cells", "n_agree", "agreement_rate", "spearman", "contribution"]].to_markdown(
            index=False, floatfmt=("", ".0f", ".0f", ".2f", "+.2f", "+.2f")), ""]


def decompose_markdown(df: pd.DataFrame, paths: dict[str, str], headline: dict[str, dict[str, str]]) -> str:
    """``decompose.md``: the summary over runs, then each run's four sections."""
    out = ["# What carries the gradient headline: its decomposition per run", "",
           "Spearman of each per-cell prediction against Delta_ctrl over the run's cells (relative pairing), "
           "exact match unless the column says `loss`; `headline without X`: the headline's Spearman with X "
           "partialled out (rank residuals). Definitions: docs/decompose.md.", "",
           summary_table(df, headline).to_markdown(index=False, floatfmt="+.2f"), ""]
    for run, g in df.groupby("run", sort=False):
        out += _run_section(g, run, paths[run], headline[run])
    return re.sub(r"(?<![\w.])[+]?nan(?!\w)", "–", "\n".join(out))


def decompose(results_dirs: Sequence[RunData | str | Path], out_dir: str | Path, n_perm: int = 10000, seed: int = 0,
              log: Callable[[str], None] = print) -> tuple[Path, Path]:
    """Decompose every run (a results folder, or its :class:`RunData` already loaded) and
    write ``decompose.csv`` and ``decompose.md`` into ``out_dir``."""
    out = Path(out_dir)
    frames, paths, heads = [], {}, {}
    for d in results_dirs:
        run = d if isinstance(d, RunData) else load_run_data(d)
        if run.label in paths:
            run.label = f"{run.label} ({run.path.name})"
        log(f"{run.label}: {run.path}")
        frames.append(decompose_run(run, n_perm, seed))
        paths[run.label], heads[run.label] = str(run.path), run.headline
    df = pd.concat(frames, ignore_index=True)
    out.mkdir(parents=True, exist_ok=True)
    from ..core.atomic import atomic_write_text

    atomic_write_text(out / "decompose.csv", df.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(out / "decompose.md", decompose_markdown(df, paths, heads))
    return out / "decompose.csv", out / "decompose.md"

"""The whole chain through Snakemake on the `tiny` preset, in a temporary directory."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from swift_study.core.offline import offline_env

from parallel import CORES
from shared_runs import SNAKEMAKE, copy_run
from shared_runs import snakemake_tiny as _snakemake

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_swift_once):
    """The whole tiny run: the session's shared swift target (conftest), continued in a copy."""
    work = copy_run(tiny_swift_once, tmp_path_factory.mktemp("tiny") / "run")
    _snakemake(work, "--quiet", "rules")
    return work / "results-tiny"


@pytest.mark.slow
def test_every_output_with_sane_contents(tiny_run):
    r = tiny_run
    for path in ["report.html", "swift/summary.csv", "swift/summary.md", "validation/alignment.csv",
                 "validation/costs.csv", "model/state_accuracy.csv", "figures/alignment.png",
                 "figures/swift_cot.png", "figures/swift_cot.pdf", "figures/state_accuracy.png",
                 "figures/swift_corrupt.png", "validation/generations.csv", "figures/validation.pdf",
                 "alignment/league.csv", "alignment/league.md", "figures/league.png"]:
        assert (r / path).stat().st_size > 0, path
    league = pd.read_csv(r / "alignment/league.csv")
    # gradient rows: 3 estimators x (none: base, step-3, aggregate; adam: step-3, aggregate;
    # ekfac: base, step-3, aggregate) x 2 pairings
    grad = league[league["predictor"] == "gradient"]
    assert len(grad) == 3 * 8 * 2 and league["default"].sum() == grad["default"].sum() == 2
    assert set(grad["precondition"]) == {"none", "adam", "ekfac"}
    # the predictors other than gradients: repsim at both states and their aggregate, bm25 on the
    # texts, the two pilots at the headline state; each row with the seconds its side cost
    others = league[league["predictor"] != "gradient"].groupby("predictor")["state"].agg(set).to_dict()
    assert others == {"repsim": {"base", "step-3", "aggregate"}, "bm25": {"text"}, "pilot": {"step-3"},
                      "pilot_10x": {"step-3"}, "length": {"text"}}
    assert (league["seconds"] > 0).all()
    base = pd.read_csv(r / "alignment/baselines.csv")
    assert set(base["metric"]) == {"em", "loss"} and set(base["pairing"]) == {"relative", "own"}
    assert {"repsim", "bm25", "pilot", "pilot_10x", "length"} <= set(base["predictor"])
    assert json.loads((r / "swift/ekfac/step-3/args.json").read_text())["empirical_fisher"] is True
    summary = pd.read_csv(r / "swift/summary.csv")
    assert set(summary["context"]) == {"in", "cross"} | {f"task:{t}" for t in ("add", "sub", "compare", "reverse")}
    # the pre-registered default (adam, last state): the base has no Adam moments, so no
    # adam scores; its gradient features are still computed (the league's none/ekfac rows)
    assert set(summary["state"]) == {"step-3", "aggregate"}
    default = league[league["default"]]
    assert set(default["state"]) == {"step-3"} and set(default["precondition"]) == {"adam"}
    assert "adam / state step-3" in (r / "validation/alignment.md").read_text(encoding="utf-8")
    assert summary["s_strategy"].notna().all() and summary["s_baseline"].notna().all()
    assert ((summary["relinf_lo"] <= summary["relinf"]) | summary["unstable"]).all()
    # the model states really differ: the warm-up moved the weights
    from swift_study.swift.gradients import concat_features

    feats = {s: concat_features(sorted((r / f"swift/features/{s}").glob("shard-*-of-2/eval.npy")))
             for s in ("base", "step-3")}
    assert len(feats["base"]) == len(pd.read_json(r / "data/eval/qa.jsonl", lines=True))  # both shards
    assert feats["base"].shape == feats["step-3"].shape
    assert abs(feats["base"] - feats["step-3"]).max() > 0
    state = json.loads((r / "model/warmup/states/step-3/state.json").read_text())
    assert state["step"] == 3 and state["learning_rate"] > 0
    align = pd.read_csv(r / "validation/alignment.csv")
    assert {"relinf", "delta", "agree", "state"} <= set(align.columns)
    agg = align[align["state"] == "aggregate"]
    assert len(agg[agg["pairing"] == "relative"]) == len(agg[agg["pairing"] == "own"]) == 12  # 2 studies x (in, cross, 4 tasks)
    # the validation study: both effects for in, cross and every eval task, two seeds, truncation reported
    val = pd.read_csv(r / "validation/validation.csv")
    tasks = {f"task:{t}" for t in ("add", "sub", "compare", "reverse")}
    for study in ("cot", "corrupt"):
        assert set(val.loc[val["study"] == study, "context"]) == {"in", "cross"} | tasks
    assert (val["n_seeds"] == 2).all()
    assert val[["delta_em_ctrl", "delta_em_ctrl_lo", "delta_em_ctrl_hi", "delta_em"]].notna().all().all()
    gens = pd.read_csv(r / "validation/generations.csv")
    overall = gens[gens["task"] == "all"]
    assert len(overall) == 5 * 2 and gens["truncated"].between(0, 1).all()
    assert set(gens["task"]) == {"all", "add", "sub", "compare", "reverse"}
    fracs = overall[[c for c in gens if c.startswith("frac_")]].sum(axis=1)
    assert ((fracs - 1).abs() < 1e-9).all()  # every generation has one layout
    assert (r / "figures/validation.png").stat().st_size > 0
    costs = pd.read_csv(r / "validation/costs.csv").set_index("side")
    assert costs.loc["swift", "wall_s"] > 0 and costs.loc["validation", "wall_s"] > 0
    samples = [json.loads(l) for l in open(r / "eval/B_seed-0/samples.jsonl", encoding="utf-8")]
    assert samples and all(s["em"] in (0, 1) and s["nll_per_token"] > 0 for s in samples)
    assert json.loads((r / "eval/B_seed-0/results.json").read_text())["results"]
    html = (r / "report.html").read_text(encoding="utf-8")
    body = re.sub(r"data:[a-z/+]+;base64,[A-Za-z0-9+/=]+", "", html.split("<body>")[1])  # base64 may spell http
    assert "data:image/png;base64," in html and "Alignment" in html and "http" not in body
    for rule_log in ["pretrain.log", "warmup.log", "alignment.log"]:
        assert (r / "logs" / rule_log).stat().st_size > 0
    assert (r / "benchmarks/pretrain.tsv").exists()


@pytest.mark.slow
def test_rerun_is_a_no_op_and_new_probes_rerun_the_swift_side_only(tiny_run):
    work = tiny_run.parent
    proc = _snakemake(work, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr
    proc = _snakemake(work, "-n", "--forcerun", "study_sets")
    rules = set(re.findall(r"^(?:local)?rule (\w+):", proc.stdout + proc.stderr, re.M))
    assert {"study_sets", "probe_features", "score_study", "alignment"} <= rules
    assert not rules & {"finetune", "warmup", "pretrain", "evaluate"}  # retraining does not depend on probes
    assert "state_features" not in rules  # the eval features are computed once per state, not per study


def test_one_key_switches_the_studys_scores_to_a_predictor(tiny_run, tmp_path):
    """swift.predictor: length makes score_study read that predictor's stored scores (no
    feature job), and everything that leads with the study's answer follows; the league and
    the retrainings do not move. A predictor the run does not compute stops at start-up."""
    work = tiny_run.parent
    switch = tmp_path / "switch.yaml"
    switch.write_text("swift:\n  predictor: length\n")
    cfg = [str(REPO / "config" / "tiny.yaml"), str(switch)]
    proc = _snakemake(work, "-n", "--configfile", *cfg)
    rules = set(re.findall(r"^(?:local)?rule (\w+):", proc.stdout + proc.stderr, re.M))
    assert {"score_study", "swift_summary", "alignment", "report"} <= rules
    assert not rules & {"state_features", "probe_features", "predictor_scores", "finetune", "warmup"}
    switch.write_text("swift:\n  predictor: pilot\nbaselines:\n  predictors: [bm25]\n")
    proc = _snakemake(work, "-n", "--configfile", *cfg, check=False)
    assert proc.returncode != 0 and "swift.predictor: 'pilot' is not computed by this run" in proc.stderr + proc.stdout


@pytest.mark.slow
def test_a_switched_run_scores_the_study_with_the_predictors_own_scores(tiny_run, tmp_path):
    """End to end on a copy of the tiny run: with swift.predictor: length, score_study's
    influence matrix of a study is the length predictor's (each probe's response length in
    characters, against every eval example), and its scores table differs from the
    gradient one the run wrote."""
    import numpy as np

    work = copy_run(tiny_run.parent, tmp_path / "switched")
    switch = tmp_path / "switch.yaml"
    switch.write_text("swift:\n  predictor: length\n")
    _snakemake(work, "results-tiny/swift/scores/cot_influence.npz", "--configfile",
               str(REPO / "config" / "tiny.yaml"), str(switch))
    probes = [json.loads(line) for line in (tiny_run / "data/studies/cot/probes.jsonl").read_text(
        encoding="utf-8").splitlines() if line.strip()]
    with np.load(work / "results-tiny/swift/scores/cot_influence.npz") as z:
        keys = [k for k in z.files if k.endswith("/dots")]
        assert len(keys) == 1, z.files  # one state: the text the predictor reads
        dots = z[keys[0]]
    assert dots.shape[0] == len(probes)
    np.testing.assert_array_equal(dots, np.array([len(r["response"]) for r in probes], float)[:, None]
                                  * np.ones((1, dots.shape[1])))
    switched = pd.read_csv(work / "results-tiny/swift/scores/cot.csv")
    gradient = pd.read_csv(tiny_run / "swift/scores/cot.csv")
    assert set(switched["state"]) != set(gradient["state"])  # another state set, not a relabelled copy


@pytest.mark.slow
def test_figures_redraw_from_stored_results_readably(tiny_run):
    """`snakemake figures` runs the figure rules alone (stored CSVs in, nothing upstream), and
    every figure of the tiny run has no overlapping text and no missing glyph."""
    import warnings

    from swift_study.report.figures import render_stored, text_overlaps

    work = tiny_run.parent
    figure_rules = ["swift_figure", "state_accuracy_figure", "validation_figure", "alignment_figure", "league_figure"]
    proc = _snakemake(work, "figures", "--forcerun", *figure_rules)
    rules = set(re.findall(r"^(?:local)?rule (\w+):", proc.stdout + proc.stderr, re.M))
    assert rules == set(figure_rules) | {"figures"}, rules  # the jobs it ran: nothing upstream
    assert (tiny_run / "figures/state_accuracy.pdf").stat().st_size > 0
    r = tiny_run
    stored = [("swift", {"scores": r / "swift/scores/cot.csv"}), ("swift", {"scores": r / "swift/scores/corrupt.csv"}),
              ("state_accuracy", {"csv": r / "model/state_accuracy.csv"}),
              ("validation", {"validation": r / "validation/validation.csv"}),
              ("alignment", {"alignment": r / "validation/alignment.csv"}), ("league", {"league": r / "alignment/league.csv"})]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing glyph warns
        for name, inputs in stored:
            fig = render_stored(name, inputs, None, None, n_perm=200, seed=7)
            assert text_overlaps(fig) == [], name


@pytest.mark.slow
def test_the_tiny_report_in_a_real_browser(tiny_run):
    """Headless Chromium: every image of the report loaded, every section there, a screenshot."""
    from swift_study.report.browser import check_report, find_chromium

    if find_chromium() is None and os.environ.get("SWIFT_REQUIRE_CHROMIUM") != "1":
        pytest.skip("no Chromium (apt-get install -y chromium)")
    res = check_report(tiny_run / "report.html", tiny_run / "report.png")
    assert res.ok, res.problems
    assert len(res.images) >= 6  # league, the two studies, model states, validation, alignment


@pytest.mark.slow
def test_verify_finds_and_its_command_repairs_a_truncated_store_and_a_deleted_score_file(tiny_run, tmp_path):
    """Issue 23 (before the budget and LDS tests: a copy without their outputs has less to
    repair): on a copy of the finished tiny run, `swift-study verify` is clean; after a
    truncated feature store and a deleted score file it names both with their repair,
    exits 1, and its printed command restores the same results; a truncated model state
    is named with the warm-up's rerun as its repair, and a job that reads it stops with
    the checksum error before it computes anything. (The state's repair, a warm-up rerun,
    is not run here: reruns reproducing results bit for bit are tested by the kill-and-rerun
    test, and the warm-up rerun would redo most of the run.)"""
    import shlex
    import shutil

    work = tmp_path / "copy"
    shutil.copytree(tiny_run.parent, work, symlinks=True, ignore=shutil.ignore_patterns("locks", "swift-study.lock"))
    r = work / "results-tiny"

    def verify():
        return subprocess.run([sys.executable, "-m", "swift_study.cli", "verify", "--preset", "tiny",
                               "--directory", str(work)], capture_output=True, text=True, env=offline_env(),
                              timeout=600)

    proc = verify()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    state = "results-tiny/model/warmup/states/step-3/model.safetensors"
    store = "results-tiny/swift/features/step-3/shard-1-of-2/eval.npy"
    scores = "results-tiny/swift/scores/cot.csv"
    originals = {p: (work / p).read_bytes() for p in (store, scores)}
    (work / store).write_bytes(originals[store][:len(originals[store]) // 2])
    (work / scores).unlink()
    proc = verify()
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert f"corrupted: {store}: checksum mismatch" in out and f"missing: {scores}" in out
    assert f"corrupted: {state}" not in out
    repair = out.strip().splitlines()[-1].strip()
    assert repair.startswith("snakemake --cores all")
    cmd = [*SNAKEMAKE, *shlex.split(repair)[1:]]
    fixed = subprocess.run(cmd, capture_output=True, text=True, env=offline_env(), timeout=900)
    assert fixed.returncode == 0, fixed.stderr[-6000:]
    for p, data in originals.items():
        assert (work / p).read_bytes() == data, f"{p} differs after the repair"
    # now a truncated model state: the repaired files are clean, the state alone is named,
    # with the warm-up's rerun as its repair
    w = work / state
    w.write_bytes(w.read_bytes()[:w.stat().st_size // 2])
    proc = verify()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    problems = [line for line in proc.stdout.splitlines() if line.startswith(("corrupted:", "missing:"))]
    assert len(problems) == 1 and problems[0].startswith(f"corrupted: {state}: checksum mismatch"), proc.stdout
    assert "--forcerun results-tiny/model/warmup" in proc.stdout
    # and whatever reads the state (every job loads states through load_model) stops with
    # the checksum error before it computes anything
    from swift_study.core.errors import DataError
    from swift_study.model.modeling import load_model

    with pytest.raises(DataError, match="checksum mismatch"):
        load_model(w.parent)


@pytest.fixture(scope="module")
def optional_studies(tiny_run):
    """`snakemake budget lds` on the finished tiny run: one invocation, so the two optional
    studies' jobs share the cores."""
    _snakemake(tiny_run.parent, "budget", "lds", "--quiet", "rules")
    return tiny_run


@pytest.mark.slow
def test_budget_study_on_the_tiny_run(optional_studies):
    """`snakemake budget` reuses the model states, selects, retrains and tabulates."""
    tiny_run = optional_studies
    r = tiny_run / "budget"
    pool = pd.read_json(r / "pool.jsonl", lines=True)
    assert set(pool["format"]) == {"qa", "cot", "corrupt"} and len(pool) == 4 * 12 * 3
    sel = pd.read_csv(r / "selections/summary.csv").set_index("run")
    n = max(1, round(0.05 * len(pool)))
    for s in ("random", "cluster", "gradient", "swift", "repsim", "bm25"):
        assert sel.loc[f"add.{s}.pct-5", "n_selected"] == n
        chosen = pd.read_json(r / f"selections/add.{s}.pct-5.jsonl", lines=True)
        assert len(chosen) == n and set(chosen["id"]) <= set(pool["id"])
    assert sel.loc["add.task", "n_selected"] == (pool["task"] == "add").sum()
    table = pd.read_csv(r / "budget.csv")
    pooled = table[(table["seed"] == "all") & (table["cell"] == "target")]
    assert set(pooled["selector"]) == {"start", "random", "cluster", "gradient", "swift", "repsim", "bm25",
                                       "task", "all"}
    assert pooled["em"].between(0, 1).all() and (pooled["em_lo"] <= pooled["em_hi"]).all()
    assert set(table["cell"]) == {"target", "other"} | {f"task:{t}" for t in ("add", "sub", "compare", "reverse")}
    assert (table.loc[table["selector"] == "all", "n_examples"] == len(pool)).all()
    assert (table.loc[~table["selector"].isin(["start"]), "train_seconds"] > 0).all()
    assert set(pd.read_csv(r / "ltd.csv")["verdict"]) <= {"beats", "matches", "worse"}
    assert "LTD claim" in (r / "budget.md").read_text(encoding="utf-8")
    assert (tiny_run / "figures/budget.png").stat().st_size > 0
    assert not (r / "models").exists() or not any((r / "models").rglob("*.safetensors"))  # models not kept
    # a study whose strategy is already in use leaves the pool (and so the retrainings) alone
    extra = tiny_run.parent / "one_more_study.yaml"
    extra.write_text("studies:\n  - {name: cot, strategy: cot, in_task: [add, sub]}\n"
                     "  - {name: corrupt, strategy: corrupt, in_task: [add, compare]}\n"
                     "  - {name: cot_rc, strategy: cot, in_task: [reverse, compare]}\n")
    proc = _snakemake(tiny_run.parent, "-n", "budget", "--configfile", str(REPO / "config" / "tiny.yaml"), str(extra))
    rules = set(re.findall(r"^(?:local)?rule (\w+):", proc.stdout + proc.stderr, re.M))
    assert "budget_pool" not in rules and "budget_train" not in rules, rules


@pytest.mark.slow
def test_lds_on_the_tiny_run(optional_studies):
    """`snakemake lds`: retrainings on D_B plus random strategy fractions, scored for the
    default configuration and the league's best."""
    tiny_run = optional_studies
    work = tiny_run.parent
    fractions = pd.read_csv(tiny_run / "lds/fractions.csv")
    assert set(fractions["model"]) == {"lds-0", "lds-1", "lds-2"} and fractions["fraction"].between(0, 1).all()
    n_qa = len(pd.read_json(tiny_run / "data/train/qa.jsonl", lines=True))
    for model, g in fractions.groupby("model"):
        data = pd.read_json(tiny_run / f"lds/data/{model}.jsonl", lines=True)
        assert len(data) == n_qa + sum(round(r.fraction * r.n_strategy) for r in g.itertuples())
    lds = pd.read_csv(tiny_run / "alignment/lds.csv")
    assert lds["config"].nunique() == 2 and set(lds["task"]) == {"add", "sub", "compare", "reverse", "mean"}
    assert lds["lds"].dropna().between(-1, 1).all()
    assert (tiny_run / "figures/lds.png").stat().st_size > 0
    # the optional studies join the report once made
    _snakemake(work, "--quiet", "rules")
    html = (tiny_run / "report.html").read_text(encoding="utf-8")
    assert "Strategy-level LDS" in html and "Data-budget study" in html


def test_bad_config_key_stops_with_its_name(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("swift:\n  gradients:\n    engine: warp\n")
    proc = _snakemake(tmp_path, "-n", "--configfile", str(REPO / "config" / "tiny.yaml"), str(bad), check=False)
    assert proc.returncode != 0
    assert "swift.gradients.engine" in proc.stderr + proc.stdout
    assert not (tmp_path / "results-tiny").exists()


@pytest.mark.slow
def test_split_feature_jobs_write_what_one_job_wrote(tiny_run):
    """The eval features (state_features) and each study's probe features (probe_features) are
    bit for bit what the single job that computed both with one loaded model wrote before the
    split: recomputed here that way, at the jobs' thread count (half the cores, at least 1)."""
    import numpy as np
    import torch

    from swift_study.data.records import read_jsonl
    from swift_study.model.modeling import load_model
    from swift_study.model.states import ModelState
    from swift_study.model.tokenizer import load_tokenizer
    from swift_study.pipeline.config import load_config
    from swift_study.swift.features import eval_pairs, gradient_args
    from swift_study.swift.gradients import featurize, open_features, shard_bounds

    r = tiny_run
    cfg = load_config(REPO / "config" / "tiny.yaml")
    args = gradient_args(cfg["swift"]["gradients"], cfg["seed"], "cpu", cfg["model"]["max_length"])
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(CORES) // 2))
    try:
        sdir = r / "model/warmup/states/step-3"
        model, tok = load_model(sdir), load_tokenizer(r / "model/tokenizer")
        evals = eval_pairs(read_jsonl(r / "data/eval/qa.jsonl"), "answer", [])
        probes = [(x.prompt, x.response) for x in read_jsonl(r / "data/studies/cot/probes.jsonl")]
        for shard in range(2):
            lo, hi = shard_bounds(len(evals), args, shard, 2)
            ev = featurize(model, tok, evals[lo:hi], args, progress=False)  # eval first, then probes,
            plo, phi = shard_bounds(len(probes), args, shard, 2)         # one model, as one job did
            pr = featurize(model, tok, probes[plo:phi], args, adam=ModelState(sdir).adam(), progress=False)
            d = r / f"swift/features/step-3/shard-{shard}-of-2"
            np.testing.assert_array_equal(np.asarray(open_features(d / "eval.npy")), ev)
            np.testing.assert_array_equal(np.asarray(open_features(d / "probes_cot/features.npy")), pr)
    finally:
        torch.set_num_threads(threads)

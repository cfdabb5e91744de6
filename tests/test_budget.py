"""The data-budget study: the pool, the selectors, the runs and the result table."""
import copy
import sys
import types

import numpy as np
import pandas as pd
import pytest

from swift_study.budget.study import (budget_runs, budget_size, budget_table, check_budget_config, ltd_claim,
                                selection_context)
from swift_study.pipeline.config import validate_config
from swift_study.core.errors import ConfigError, DataError
from swift_study.data.pool import load_pool, target_examples
from swift_study.data.records import Record
from swift_study.budget.selection import (SelectionContext, allocate, inflow_scores, run_selector, state_products,
                                   task_scores)
from swift_study.data.suite import build_suite


def _rec(i: int, task: str, fmt: str) -> Record:
    return Record(id=f"{task}-{i}:{fmt}", query_id=f"{task}-{i}", task=task, lang="zh", format=fmt,
                  prompt="q", response="答案：1", answer="1", split="train")


def _pool(n_per: int = 10, tasks=("add", "sort"), formats=("qa", "cot", "corrupt")) -> list[Record]:
    return [_rec(i, t, f) for t in tasks for i in range(n_per) for f in formats]


# ------------------------------------------------------------------------------ pool


def test_builtin_pool_holds_no_probe_or_eval_query_and_every_format(tiny_config):
    cfg = copy.deepcopy(tiny_config)
    pool = load_pool(cfg)
    _, suite = build_suite(cfg)
    held_out = {r.query_id for r in suite if r.split in ("probe", "eval")}
    assert not {r.query_id for r in pool} & held_out
    per_query: dict[str, set[str]] = {}
    for r in pool:
        per_query.setdefault(r.query_id, set()).add(r.format)
    assert all(f == {"qa", "cot", "corrupt"} for f in per_query.values())
    for task in cfg["suite"]["tasks"]:
        assert sum(1 for q in per_query if q.startswith(f"{task}-")) == cfg["budget"]["pool"]["queries_per_task"]
    # the pool's records of a training query are the suite's own records of it
    train = {r.id: r for r in suite if r.split == "train"}
    shared = [r for r in pool if r.id in train]
    assert shared and all(r.response == train[r.id].response for r in shared)
    cfg["budget"]["pool"]["queries_per_task"] += 5
    assert len(load_pool(cfg)) > len(pool)


def test_target_examples_are_plain_qa_probe_records_of_the_target_tasks(tiny_config):
    _, suite = build_suite(tiny_config)
    probes = [r for r in suite if r.split == "probe"]
    out = target_examples(probes, tiny_config["budget"])
    assert {r.task for r in out} == {"add"} and {r.format for r in out} == {"qa"}
    assert {r.split for r in out} == {"probe"} and len(out) == tiny_config["budget"]["n_target"]


def test_user_pool_with_eval_records_is_refused(tmp_path, tiny_config):
    path = tmp_path / "pool.jsonl"
    rec = _rec(0, "add", "qa")
    path.write_text(rec.to_json().replace('"split": "train"', '"split": "eval"') + "\n", encoding="utf-8")
    cfg = copy.deepcopy(tiny_config)
    cfg["budget"]["pool"]["user_data"] = [str(path)]
    with pytest.raises(DataError, match="training examples only"):
        load_pool(cfg)


# ------------------------------------------------------------------------- selectors


def test_random_is_deterministic_and_seeded():
    pool = _pool()
    a = run_selector("random", SelectionContext(pool, ("add",), seed=1), 7)
    b = run_selector("random", SelectionContext(pool, ("add",), seed=1), 7)
    c = run_selector("random", SelectionContext(pool, ("add",), seed=2), 7)
    assert a == b and len(a) == 7 and a != c


def test_task_takes_every_target_example():
    pool = _pool()
    idx = run_selector("task", SelectionContext(pool, ("sort",), seed=0), 1)
    assert [pool[i].task for i in idx] == ["sort"] * 30


def test_gradient_takes_the_best_max_over_target_tasks():
    pool = _pool(n_per=4)
    scores = np.zeros((len(pool), 2))
    scores[3, 0], scores[17, 1], scores[9, 0], scores[9, 1] = 0.9, 0.8, -1.0, 0.1
    ctx = SelectionContext(pool, ("add", "sort"), seed=0, task_scores=scores)
    assert run_selector("gradient", ctx, 3) == sorted([3, 17, 9])


def test_swift_allocates_by_positive_format_inflow():
    pool = _pool(n_per=20)
    inflow = np.array([{"qa": 1.0, "cot": 3.0, "corrupt": -2.0}[r.format] for r in pool])
    ctx = SelectionContext(pool, ("add",), seed=0, task_scores=np.random.default_rng(0).random((len(pool), 1)),
                           inflow=inflow)
    idx = run_selector("swift", ctx, 12)
    fmts = pd.Series([pool[i].format for i in idx]).value_counts().to_dict()
    assert fmts == {"cot": 9, "qa": 3}
    assert ctx.info["swift_allocation"]["corrupt"] == 0


def test_allocate_respects_capacity_and_total():
    alloc = allocate(10, {"a": 1.0, "b": 1.0, "c": 0.0}, {"a": 2, "b": 100, "c": 50})
    assert alloc == {"a": 2, "b": 8, "c": 0}
    assert sum(allocate(7, {"a": 1, "b": 2, "c": 4}, {"a": 9, "b": 9, "c": 9}).values()) == 7
    assert allocate(5, {"a": -1.0}, {"a": 9}) == {"a": 0}


def test_cluster_picks_one_example_per_blob_of_the_target_task():
    rng = np.random.default_rng(0)
    pool = _pool(n_per=30, formats=("qa",))
    centres = np.eye(3) * 10
    emb = np.stack([centres[i % 3] + rng.normal(0, 0.1, 3) for i in range(len(pool))]).astype(np.float32)
    idx = run_selector("cluster", SelectionContext(pool, ("sort",), seed=0, embeddings=emb), 3)
    assert len(idx) == 3 and {pool[i].task for i in idx} == {"sort"}
    assert sorted(int(np.argmax(emb[i])) for i in idx) == [0, 1, 2]


def test_user_selector_by_module_function_and_its_answer_is_checked(monkeypatch):
    mod = types.ModuleType("my_selectors")
    mod.first = lambda ctx, n: list(range(n))
    mod.dupes = lambda ctx, n: [0, 0]
    monkeypatch.setitem(sys.modules, "my_selectors", mod)
    ctx = SelectionContext(_pool(), ("add",), seed=0)
    assert run_selector("mine", ctx, 4, {"mine": "my_selectors:first"}) == [0, 1, 2, 3]
    with pytest.raises(DataError, match="duplicate"):
        run_selector("bad", ctx, 4, {"bad": "my_selectors:dupes"})
    with pytest.raises(ConfigError, match="cannot import"):
        run_selector("gone", ctx, 4, {"gone": "my_selectors:nothing"})
    with pytest.raises(DataError, match="were not computed"):
        run_selector("gradient", ctx, 4)


def test_scores_from_features_match_brute_force_and_weight_states_by_lr(tmp_path):
    rng = np.random.default_rng(0)
    P, T = rng.normal(size=(12, 5)), rng.normal(size=(4, 5))
    ttask = ["add", "add", "sort", "sort"]
    np.save(tmp_path / "pool.npy", P.astype(np.float32))  # a store path streams block by block
    prod = state_products(P, T, chunk=5)
    s = task_scores(prod, ttask, ["add", "sort"])
    cos = (P / np.linalg.norm(P, axis=1, keepdims=True)) @ (T / np.linalg.norm(T, axis=1, keepdims=True)).T
    np.testing.assert_allclose(s, np.stack([cos[:, :2].mean(1), cos[:, 2:].mean(1)], axis=1))
    np.testing.assert_allclose(task_scores(state_products(tmp_path / "pool.npy", T, chunk=5), ttask, ["add", "sort"]),
                               s, rtol=1e-6)
    inflow = inflow_scores(prod, np.ones(4, dtype=bool), "scalar_projection")
    np.testing.assert_allclose(inflow, (P @ T.T / np.linalg.norm(T, axis=1)).mean(1))
    pool = [_rec(i, "add", "qa") for i in range(12)]
    one = selection_context(pool, ["add"], 0, [state_products(P, T, 1.0)], ttask)
    two = selection_context(pool, ["add"], 0, [state_products(P, T, 1.0), state_products(P, T, 3.0)], ttask)
    np.testing.assert_allclose(two.task_scores, 4 * one.task_scores)
    # the inflow of a target uses only its own tasks' target examples
    np.testing.assert_allclose(one.inflow, inflow_scores(state_products(P, T[:2]), np.ones(2, dtype=bool),
                                                         "scalar_projection"))


# ----------------------------------------------------------------------- runs, config


def test_runs_of_the_default_budget_block(tiny_config):
    cfg = validate_config({"suite": {"tasks": ["add", "sort"]},
                           "studies": [{"name": "cot", "strategy": "cot", "in_task": ["add"]}]})
    runs = budget_runs(cfg["budget"])
    names = [r.name for r in runs]
    assert "add.gradient.pct-0.5" in names and "sort.task" in names and names[-1] == "all.pct-100"
    # 2 targets x 6 selectors (random, cluster, gradient, swift, repsim, bm25) x 4 budgets below
    # 100%, a task run each, one whole-pool run
    assert len(runs) == 2 * 6 * 4 + 2 + 1
    assert budget_size(0.005, 20810) == 104 and budget_size(0.0001, 100) == 1


@pytest.mark.parametrize("change, match", [
    (lambda b: b.update(targets=[{"name": "x", "tasks": ["mul"]}]), "not in suite.tasks"),
    (lambda b: b.update(selectors=["oracle"]), "unknown selector"),
    (lambda b: b.update(states=["base"]), "no Adam moments"),
    (lambda b: b.update(targets=[{"name": "all", "tasks": ["add"]}]), "must be unique"),
])
def test_bad_budget_config_is_a_clear_error(tiny_config, change, match):
    cfg = copy.deepcopy(tiny_config)
    change(cfg["budget"])
    with pytest.raises(ConfigError, match=match):
        check_budget_config(cfg)


# --------------------------------------------------------------------------- table


def _samples(em_by_task: dict[str, float], n: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [{"id": f"{t}-{i}", "task": t, "em": float(rng.random() < p)} for t, p in em_by_task.items()
            for i in range(n)]
    return pd.DataFrame(rows).sort_values("id")


def test_table_and_ltd_verdicts_follow_the_data():
    runs = budget_runs({"targets": [{"name": "add", "tasks": ["add"]}], "selectors": ["random", "gradient"],
                        "fractions": [0.01, 1.0]})
    good, bad, mid = {"add": 0.95, "sort": 0.5}, {"add": 0.05, "sort": 0.5}, {"add": 0.5, "sort": 0.5}
    samples = {"add.random.pct-1": [_samples(bad, seed=s) for s in range(2)],
               "add.gradient.pct-1": [_samples(good, seed=s) for s in range(2)],
               "add.task": [_samples(mid, seed=s + 5) for s in range(2)],
               "all.pct-100": [_samples(mid, seed=s + 9) for s in range(2)]}
    sizes = {"add.random.pct-1": 10, "add.gradient.pct-1": 10, "add.task": 300, "all.pct-100": 1000}
    table = budget_table(runs, {"add": ["add"]}, samples, _samples(bad), sizes, {}, 1000, 200, 0.95, 0)
    pooled = table[(table["seed"] == "all") & (table["cell"] == "target")].set_index("selector")
    assert pooled.loc["gradient", "em"] > pooled.loc["task", "em"] > pooled.loc["random", "em"]
    assert (table["em_lo"] <= table["em"]).all() and (table["em"] <= table["em_hi"]).all()
    assert pooled.loc["task", "fraction"] == pytest.approx(0.3) and pooled.loc["all", "n_examples"] == 1000
    assert set(table["seed"]) == {"0", "1", "all"}
    claim = ltd_claim(runs, samples, {"add": ["add"]}, 0.05, 200, 0.95, 0).set_index("selector")
    assert claim.loc["gradient", "verdict"] == "beats" and claim.loc["random", "verdict"] == "worse"


# ------------------------------------------------------------------------------ LDS


def test_lds_sets_predictions_and_scores():
    from swift_study.alignment.lds import lds_fractions, lds_predictions, lds_scores, lds_training_set
    from swift_study.data.study import Study

    studies = [Study("a", "cot", ("add",)), Study("b", "corrupt", ("sort",))]
    f = lds_fractions(6, studies, seed=3)
    assert len(f) == 12 and f["fraction"].between(0, 1).all()
    assert f.equals(lds_fractions(6, studies, seed=3)) and not f.equals(lds_fractions(6, studies, seed=4))
    qa = [_rec(i, "add", "qa") for i in range(5)]
    d_s = {"a": [_rec(i, "add", "cot") for i in range(40)], "b": [_rec(i, "sort", "corrupt") for i in range(20)]}
    for j in range(6):
        fj = f[f["model"] == f"lds-{j}"].set_index("study")["fraction"]
        got = lds_training_set(f"lds-{j}", f, qa, d_s, seed=0)
        assert sum(r.format == "cot" for r in got) == round(fj["a"] * 40)
        assert sum(r.format == "corrupt" for r in got) == round(fj["b"] * 20) and got[:5] == qa
    # a strategy that helps task x and one that hurts it: the measured outcome follows
    # the prediction exactly, so LDS is 1 on x; an outcome against it gives -1
    inflow = pd.DataFrame({"study": ["a", "b", "a", "b"], "task": ["x", "x", "y", "y"], "s": [1.0, -1.0, 0.0, 1.0]})
    pred = lds_predictions(f, {"a": 40, "b": 20}, inflow)
    fw = f.pivot(index="model", columns="study", values="fraction")
    measured = pd.DataFrame([{"model": m, "task": t, "em": (40 * fw.loc[m, "a"] - 20 * fw.loc[m, "b"]) * sgn}
                             for m in fw.index for t, sgn in (("x", 1), ("y", -1))])
    scores = lds_scores(pred, measured).set_index("task")["lds"]
    assert scores["x"] == pytest.approx(1.0)
    assert scores["mean"] == pytest.approx((scores["x"] + scores["y"]) / 2)


def test_repsim_and_bm25_selectors_pick_the_nearest_pool_examples():
    from swift_study.budget.selection import run_selector
    from swift_study.predictors.lexical import bm25_matrix

    pool = [_rec(i, "add" if i < 6 else "sub", "qa") for i in range(12)]
    texts = [f"{i} plus {i + 1} is {2 * i + 1}" if i < 6 else f"{i} minus 1 is {i - 1}" for i in range(12)]
    targets = ["3 plus 4 is 7", "11 minus 1 is 10"]
    ttask = ["add", "sub"]
    bm = bm25_matrix(targets, texts).T  # (N, T)
    emb = np.eye(12)[:, :4] + 0.01
    temb = np.stack([emb[3], emb[1]])
    cos = (emb / np.linalg.norm(emb, axis=1, keepdims=True)) @ (temb / np.linalg.norm(temb, axis=1, keepdims=True)).T
    ctx = selection_context(pool, ["add"], 0, target_task=ttask, repsim=cos, bm25=bm)
    assert run_selector("bm25", ctx, 1) == [3]      # the pool example with the target's own words
    assert run_selector("repsim", ctx, 1) == [3]    # the pool example with the target's own embedding
    ctx = selection_context(pool, ["sub"], 0, target_task=ttask, repsim=cos, bm25=bm)
    assert run_selector("bm25", ctx, 1) == [11]
    assert ctx.bm25_scores.shape == (12, 1)

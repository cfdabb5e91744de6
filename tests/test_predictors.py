"""Predictors other than gradients (repsim, bm25, pilot): hand-made cases with a known
answer, the shared table's shape for every predictor, the league and the baselines table."""
import numpy as np
import pandas as pd
import pytest

from swift_study.alignment.baselines import (Config, baselines_table, compared_configs, in_task_verdicts,
                                             paired_spearman_diff)
from swift_study.alignment.league import GRADIENT, league_table, score_grid
from swift_study.data.records import Record
from swift_study.data.study import Study
from swift_study.model.modeling import load_model
from swift_study.model.tokenizer import load_tokenizer
from swift_study.predictors import PREDICTORS, predictor_states
from swift_study.predictors.compute import PredictorInputs, predict_state
from swift_study.predictors.lexical import bm25_matrix, tokenize
from swift_study.predictors.pilot import PilotArgs, eval_losses, pilot_improvement
from swift_study.predictors.repsim import rds_embeddings, similarity_products
from swift_study.predictors.store import load_scores, save_scores
from swift_study.swift.influence import COLUMNS, normalize, score_study


def rec(i, task, fmt, a, b, answer=None):
    ans = a + b if answer is None else answer
    return Record(id=f"{task}-{fmt}-{i}", query_id=f"q{i}", task=task, lang="zh", format=fmt,
                  prompt=f"{a}加{b}等于多少？\n", response=f"答案：{ans}", answer=str(ans), split="probe")


@pytest.fixture(scope="module")
def model_tok(tiny_model_dir):
    return load_model(tiny_model_dir), load_tokenizer(tiny_model_dir)


def test_tokenize_words_numbers_and_chinese_characters():
    assert tokenize("What is 12 + 7? 答案：19") == ["what", "is", "12", "7", "答", "案", "19"]
    assert tokenize("…, !") == []


def test_bm25_ranks_an_identical_document_first():
    docs = ["3加4等于多少？答案：7", "12加9等于多少？答案：21", "reverse the word cat: tac", "5加5等于多少？答案：10"]
    scores = bm25_matrix(["12加9等于多少？答案：21", "reverse the word dog: god"], docs)
    assert scores.shape == (2, 4)
    assert int(np.argmax(scores[0])) == 1
    assert int(np.argmax(scores[1])) == 2
    # a query with no token in any document scores 0 everywhere, never NaN
    assert np.all(bm25_matrix(["!!!"], docs) == 0)


def test_repsim_ranks_an_identical_example_first(model_tok):
    model, tok = model_tok
    evals = [(f"{a}加{b}等于多少？\n", f"答案：{a + b}") for a, b in [(1, 2), (13, 7), (25, 4), (8, 9)]]
    emb_e = rds_embeddings(model, tok, evals, max_length=64)
    emb_p = rds_embeddings(model, tok, [evals[2]], max_length=64)
    dots, pn, en = similarity_products(emb_p, emb_e)
    cos = normalize(dots, pn, en, "cosine")
    assert int(np.argmax(cos[0])) == 2
    assert cos[0, 2] == pytest.approx(1.0, abs=1e-9)


def test_repsim_weights_later_positions_more(model_tok):
    model, tok = model_tok
    pair = [("1加2等于多少？\n", "答案：3")]
    # batch padding must not change an example's embedding (weights restart per row)
    alone = rds_embeddings(model, tok, pair, max_length=64)
    padded = rds_embeddings(model, tok, pair + [("11加22等于多少？多少？\n", "答案：33")], max_length=64)[:1]
    np.testing.assert_allclose(alone, padded, rtol=1e-5, atol=1e-6)


def test_pilot_on_corrupt_probes_raises_their_tasks_eval_loss(model_tok):
    model, tok = model_tok
    qs = [(a, b) for a, b in [(1, 2), (3, 4), (5, 6), (7, 1), (2, 8), (4, 4)]]
    evals = [(f"{a}加{b}等于多少？\n", f"答案：{a + b}") for a, b in qs]
    right = list(evals)
    wrong = [(p, f"答案：{a + b + 11}") for (p, _), (a, b) in zip(evals, qs)]
    before = eval_losses(model, tok, evals, max_length=64)
    args = PilotArgs(steps=20, learning_rate=3e-3, batch_size=6, seed=0)
    imp_right = pilot_improvement(model, tok, right, evals, before, args, 64)
    imp_wrong = pilot_improvement(model, tok, wrong, evals, before, args, 64)
    assert imp_right.mean() > 0  # training on the right answers lowers their loss
    assert imp_wrong.mean() < imp_right.mean()  # d = improvement(corrupt) - improvement(qa) < 0
    # the model itself is left as it was
    np.testing.assert_allclose(eval_losses(model, tok, evals, max_length=64), before)


def _study_inputs():
    study = Study("corrupt", "corrupt", ("add",))
    probes = []
    for i, (a, b) in enumerate([(1, 2), (3, 4), (5, 6)]):
        probes.append(rec(i, "add", "corrupt", a, b, answer=a + b + 9))
        probes.append(rec(i, "add", "qa", a, b))
    evals = [rec(10 + i, "add", "qa", a, b) for i, (a, b) in enumerate([(1, 2), (6, 3), (2, 2)])]
    evals += [rec(20 + i, "sub", "qa", a, b) for i, (a, b) in enumerate([(9, 1), (8, 2)])]
    return study, probes, evals


@pytest.mark.parametrize("name", list(PREDICTORS))
def test_every_predictor_gives_the_shared_table(name, model_tok, tmp_path):
    model, tok = model_tok
    study, probes, evals = _study_inputs()
    inp = PredictorInputs(studies=[study], probes={"corrupt": probes}, evals=evals,
                          eval_pairs=[(r.prompt, r.response) for r in evals],
                          settings={"bm25": {"k1": 1.5, "b": 0.75}, "pilot": {"steps": 2, "steps_10x": 4,
                                                                                "batch_size": 3}},
                          train={"learning_rate": 1e-3}, max_length=64, device="auto")
    assert inp.device in ("cpu", "cuda")  # the config's "auto" is resolved (a model cannot move to "auto")
    state = predictor_states(name, ["base", "step-2"], "step-2")[0]
    scores = predict_state(name, state, 1e-3, None if name in ("bm25", "length") else model, tok, inp)["corrupt"]
    assert scores.dots.shape == (len(probes), len(evals))
    save_scores(tmp_path / "s.npz", [scores])
    back = load_scores(tmp_path / "s.npz")
    np.testing.assert_array_equal(back[0].dots, scores.dots)
    from swift_study.swift.influence import ScoreArgs
    df = score_study(back, study, ScoreArgs(estimator=PREDICTORS[name].estimator, n_boot=20))
    assert list(df.columns) == list(COLUMNS)
    assert set(df["context"]) == {"in", "cross", "task:add", "task:sub"}
    assert np.isfinite(df["diff"]).all()


def test_predictor_states():
    states = ["base", "step-1", "step-2"]
    assert predictor_states("repsim", states, "step-2") == states
    assert predictor_states("bm25", states, "step-2") == ["text"]
    assert predictor_states("length", states, "step-2") == ["text"]
    assert predictor_states("pilot", states, "step-1") == ["step-1"]
    assert predictor_states("pilot", states, "aggregate") == ["step-2"]


def _synthetic(seed=0):
    """A grid of gradient and predictor rows over 2 studies x 4 cells, and effects."""
    rng = np.random.default_rng(seed)
    cells = [(s, c) for s in ("cot", "corrupt") for c in ("in", "cross", "task:add", "task:sub")]
    effect = rng.normal(size=len(cells))
    rows, val = [], []
    for (study, ctx), e in zip(cells, effect):
        val.append(dict(study=study, strategy=study, context=ctx, delta=e, delta_lo=e - 1, delta_hi=e + 1,
                        delta_ctrl=e, delta_ctrl_lo=e - 1, delta_ctrl_hi=e + 1,
                        **{f"delta_{m}{x}": e * (1 if m == "em" else -1) for m in ("em", "loss")
                           for x in ("", "_lo", "_hi")},
                        **{f"delta_{m}_ctrl{x}": e * (1 if m == "em" else -1) for m in ("em", "loss")
                           for x in ("", "_lo", "_hi")}))
        for pred, est, pre, x in ((GRADIENT, "scalar_projection", "adam", e), ("bm25", "dot", "none", -e),
                                  ("repsim", "cosine", "none", rng.normal())):
            rows.append(dict(study=study, strategy=study, context=ctx, state="text" if pred == "bm25" else "step-2",
                             predictor=pred, estimator=est, precondition=pre, diff=x, s_strategy=x, relinf=1 + x,
                             relinf_lo=np.nan, relinf_hi=np.nan, unstable=False))
    return pd.DataFrame(rows), pd.DataFrame(val)


def test_baselines_table_against_known_predictions():
    grid, val = _synthetic()
    league = league_table(grid, val, {"estimator": "scalar_projection", "precondition": "adam", "state": "step-2"},
                          n_perm=200, seconds={(GRADIENT, "adam"): 30.0, ("bm25", "none"): 1.0})
    assert set(league["predictor"]) == {GRADIENT, "bm25", "repsim"}
    assert league.loc[league["default"], "predictor"].eq(GRADIENT).all()
    configs = compared_configs(league, {"estimator": "scalar_projection", "precondition": "adam",
                                        "state": "step-2"}, "step-2")
    assert configs[0].predictor == GRADIENT and configs[0].precondition == "adam"
    assert sorted(c.predictor for c in configs[1:]) == ["bm25", "repsim"]  # no EK-FAC rows in this league
    assert {c.predictor: c.state for c in configs}["bm25"] == "text"
    table = baselines_table(grid, val, configs, ["em", "loss"], seconds={(GRADIENT, "adam"): 30.0}, n_perm=200,
                            n_boot=200)
    assert len(table) == 2 * 2 * len(configs)
    head = table[(table["metric"] == "em") & (table["pairing"] == "relative") & (table["predictor"] == GRADIENT)]
    bm = table[(table["metric"] == "em") & (table["pairing"] == "relative") & (table["predictor"] == "bm25")]
    # the gradient rows predict the effect exactly, bm25 its negative
    assert head["spearman"].iloc[0] == pytest.approx(1.0)
    assert bm["spearman"].iloc[0] == pytest.approx(-1.0)
    assert bm["diff_vs_headline"].iloc[0] == pytest.approx(2.0)
    assert bm["diff_lo"].iloc[0] <= 2.0 <= bm["diff_hi"].iloc[0] + 1e-12
    assert head["in_task_right"].iloc[0] == "2/2" and bm["in_task_right"].iloc[0] == "0/2"
    # on the loss outcome (the sign flipped in the synthetic table) the roles swap
    hl = table[(table["metric"] == "loss") & (table["pairing"] == "relative") & (table["predictor"] == GRADIENT)]
    assert hl["spearman"].iloc[0] == pytest.approx(-1.0)
    assert head["seconds"].iloc[0] == 30.0


def test_paired_difference_of_a_predictor_with_itself_is_zero():
    t = pd.DataFrame(dict(study=["a"] * 5, context=list("vwxyz"), prediction=[1, 3, 2, 5, 4],
                          delta=[0.1, 0.5, 0.2, 0.3, 0.9]))
    d, lo, hi = paired_spearman_diff(t, t, n_boot=100)
    assert (d, lo, hi) == (0.0, 0.0, 0.0)


def test_in_task_verdicts():
    t = pd.DataFrame(dict(study=["cot", "corrupt", "cot"], context=["in", "in", "cross"],
                          prediction=[0.2, 0.1, -1.0], delta=[0.3, -0.2, -1.0]))
    right, text = in_task_verdicts(t)
    assert right == "1/2"
    assert "cot +/+ ✓" in text and "corrupt +/− ✗" in text


def test_single_state_predictors_have_no_aggregate_row():
    study, probes, evals = _study_inputs()
    from swift_study.swift.features import products_scores
    st = products_scores("text", None, np.ones((len(probes), len(evals))), np.ones(len(probes)),
                         np.ones(len(evals)), probes, evals)
    grid = score_grid({}, [study], predictors={"bm25": {"corrupt": [st]}}, n_boot=10)
    assert set(grid["state"]) == {"text"}
    assert set(grid["predictor"]) == {"bm25"}


def test_combined_baselines_over_replicates(tmp_path):
    from swift_study.alignment.baselines import combined_baselines, combined_markdown

    runs = {}
    for seed in (1, 2):
        grid, val = _synthetic(seed)
        d = tmp_path / f"seed-{seed}"
        (d / "alignment").mkdir(parents=True)
        (d / "validation").mkdir()
        league = league_table(grid, val, {"estimator": "scalar_projection", "precondition": "adam",
                                          "state": "step-2"}, n_perm=100)
        grid.to_csv(d / "alignment" / "league_scores.csv", index=False)
        league.to_csv(d / "alignment" / "league.csv", index=False)
        val.to_csv(d / "validation" / "validation.csv", index=False)
        runs[str(seed)] = d
    per, combined = combined_baselines(runs, {"estimator": "scalar_projection", "precondition": "adam"},
                                       ["em"], n_perm=200, n_boot=100)
    assert set(per["replicate"]) == {"1", "2"}
    rel = combined[combined["pairing"] == "relative"].set_index("row")
    head = rel.loc["gradient headline (pre-registered)"]
    assert head["mean_spearman"] == pytest.approx(1.0) and head["n_cells"] == 16
    assert rel.loc["bm25", "mean_spearman"] == pytest.approx(-1.0)
    assert rel.loc["bm25", "diff_vs_headline"] == pytest.approx(2.0)
    assert rel.loc["bm25", "in_task_right"] == "0/4"
    assert "stratified p" in combined_markdown(combined, "em", list(runs))


def test_length_scores_a_longer_response_higher_against_every_eval_example():
    """The no-model control: a probe's score is its response's length, the same for every
    eval example, so a study whose strategy writes longer responses than plain QA gets a
    positive relative prediction (and one that writes shorter, a negative one)."""
    study, probes, evals = _study_inputs()
    inp = PredictorInputs(studies=[study], probes={"corrupt": probes}, evals=evals,
                          eval_pairs=[(r.prompt, r.response) for r in evals], settings={})
    scores = predict_state("length", "text", None, None, None, inp)["corrupt"]
    lengths = np.array([len(r.response) for r in probes], dtype=float)
    np.testing.assert_array_equal(scores.dots, np.repeat(lengths[:, None], len(evals), axis=1))
    from swift_study.swift.influence import ScoreArgs
    df = score_study([scores], study, ScoreArgs(estimator="dot", n_boot=20))
    strat = np.mean([len(r.response) for r in probes if r.format == study.strategy])
    plain = np.mean([len(r.response) for r in probes if r.format == study.baseline])
    assert np.sign(df.loc[df["context"] == "in", "diff"].iloc[0]) == np.sign(strat - plain) != 0


def test_the_answers_state_follows_the_switched_predictor():
    from swift_study.core.errors import ConfigError
    from swift_study.predictors.registry import answer_state, check_answer_predictor

    states = ["base", "step-1", "step-2"]
    assert answer_state("gradient", states, "aggregate") == "aggregate"
    assert answer_state("repsim", states, "aggregate") == "aggregate"  # computed at every state
    assert answer_state("length", states, "step-2") == answer_state("bm25", states, "step-2") == "text"
    assert answer_state("pilot", states, "aggregate") == "step-2"
    check_answer_predictor("gradient", [])
    check_answer_predictor("bm25", ["bm25"])
    with pytest.raises(ConfigError, match="baselines.predictors"):
        check_answer_predictor("pilot", ["bm25"])

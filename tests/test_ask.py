"""`swift-study ask`: a strategy scored on a finished run (swift_study.ask).

The run is the tiny preset's swift side (`snakemake swift`, in a temporary directory, on
CORES cores: its state_features jobs ran with one torch thread, and so does this process;
the bit-for-bit equality holds at equal thread counts)."""
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from swift_study.ask import calibrate, calibration_cells
from swift_study.ask.report import verdict_sentence
from swift_study.cli import main

from shared_runs import copy_run

TINY = ["--preset", "tiny"]


@pytest.fixture(scope="module")
def tiny_swift(tmp_path_factory, tiny_swift_once):
    """The tiny preset's swift study (model states, eval features, scores), nothing else:
    a copy of the session's shared one (conftest)."""
    import torch

    torch.set_num_threads(1)  # as the run's state_features jobs (--cores 2: half of them)
    return copy_run(tiny_swift_once, tmp_path_factory.mktemp("tiny_ask") / "run") / "results-tiny"


def _ask(capsys, *args):
    code = main(["ask", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _records(path):
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def _write(path, records):
    Path(path).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return str(path)


# ----------------------------------------------------------------- on a tiny run


@pytest.mark.slow
def test_the_runs_own_probes_give_the_runs_own_scores_bit_for_bit(tiny_swift):
    """Asking about a study's own probes.jsonl (its in-task tasks) gives results/swift/scores/<study>.csv,
    and so does asking about its built-in strategy by name (the workflow's own draw)."""
    from swift_study.ask import ask
    from swift_study.cli import merged_config

    cfg = merged_config("tiny", [])
    for study in cfg["studies"]:
        stored = (tiny_swift / "swift" / "scores" / f"{study['name']}.csv").read_text(encoding="utf-8")
        probes = tiny_swift / "data" / "studies" / study["name"] / "probes.jsonl"
        answer = ask(str(probes), cfg, tiny_swift, study["in_task"])
        assert answer.table.to_csv(index=False) == stored, study["name"]
        assert answer.study == study["name"] and answer.state == "step-3"
    cot = next(s for s in cfg["studies"] if s["name"] == "cot")
    answer = ask("cot", cfg, tiny_swift, cot["in_task"])
    assert answer.table.to_csv(index=False) == (tiny_swift / "swift/scores/cot.csv").read_text(encoding="utf-8")


@pytest.mark.slow
def test_a_new_strategy_gets_a_table_a_verdict_a_rank_and_files(tiny_swift, capsys, tmp_path):
    records = []
    for r in _records(tiny_swift / "data/studies/cot/probes.jsonl"):
        if r["format"] == "cot":  # the steps, then the answer restated in English
            head, last = r["response"].rsplit("\n", 1)
            r = {**r, "format": "cot_en", "id": f"{r['query_id']}:cot_en",
                 "response": f"{head}\nIn English: the answer is {r['answer']}.\n{last}"}
        records.append(r)
    jsonl = _write(tmp_path / "cot_en.jsonl", records)
    code, out, err = _ask(capsys, jsonl, *TINY, "--results", str(tiny_swift), "--out", str(tmp_path / "answer"))
    assert code == 0, err
    assert "| in-task |" in out and "| cross-task |" in out and "| task:add |" in out
    assert "**Verdict**: " in out and ("predicted to" in out or "within noise on every task" in out)
    assert "rank " in out and " of 3 (" in out  # among the run's cot and corrupt
    assert "No number: the calibration is too weak" in out  # the swift side alone: no validated cells
    answer = json.loads((tmp_path / "answer.json").read_text(encoding="utf-8"))
    stored = pd.read_csv(tiny_swift / "swift/scores/cot.csv")
    table = pd.DataFrame(answer["scores"])
    assert list(table.columns) == list(stored.columns)
    assert set(table["context"]) == set(stored["context"]) and set(table["state"]) == set(stored["state"])
    assert {c["verdict"] for c in answer["cells"]} <= {"helps", "hurts", "within noise"}
    assert answer["strategy"] == "cot_en" and answer["in_task"] == ["add", "sub"] and answer["n_probes"] == 4
    assert (tmp_path / "answer.md").read_text(encoding="utf-8") in out
    assert (tmp_path / "answer.png").stat().st_size > 0
    from swift_study.ask import ask
    from swift_study.cli import merged_config

    drawn = ask(jsonl, merged_config("tiny", []), tiny_swift, n_probes=2)
    assert drawn.n_probes == 2 and len(drawn.rows) == len(stored[stored["state"] == "step-3"])


@pytest.mark.slow
def test_a_renderer_given_as_module_function_draws_from_the_runs_probe_queries(tiny_swift, capsys):
    code, out, err = _ask(capsys, "swift_study.data.formats:render_clarify", *TINY, "--results", str(tiny_swift),
                          "--in-task", "sub", "reverse", "--n-probes", "3")
    assert code == 0, err
    assert "Strategy `render_clarify`" in out and "3 probes" in out and "in-task tasks sub, reverse" in out


@pytest.mark.slow
def test_a_run_without_eval_features_names_the_target(tiny_swift, capsys, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "model").symlink_to(tiny_swift / "model")  # model states, but no eval features
    code, _, err = _ask(capsys, "cot", *TINY, "--results", str(results), "--in-task", "add", "sub")
    assert code == 1 and "no eval features of state step-3" in err and "snakemake --cores all swift" in err
    assert "Traceback" not in err


# ---------------------------------------------------------------- bad input, no run


def _probe(qid, fmt, task="add"):
    return {"id": f"{qid}:{fmt}", "query_id": qid, "task": task, "lang": "zh", "format": fmt, "prompt": "1加2？\n",
            "response": "答案：3", "answer": "3", "split": "probe"}


@pytest.mark.parametrize("case, expected", [
    ("not_json", ":2: invalid JSON"),
    ("no_field", ":1: missing field(s) answer"),
    ("no_qa", "has no matched plain-QA probe"),
    ("other_task", "task(s) ['mul'] are outside the run's tasks"),
])
def test_bad_strategy_files_are_refused_naming_file_and_line(case, expected, capsys, tmp_path):
    path = tmp_path / "mine.jsonl"
    lines = [json.dumps(_probe("q1", "socratic")), json.dumps(_probe("q1", "qa"))]
    if case == "not_json":
        lines[1] = '{"id": "q1:qa", '
    elif case == "no_field":
        lines[0] = json.dumps({k: v for k, v in _probe("q1", "socratic").items() if k != "answer"})
    elif case == "no_qa":
        lines.append(json.dumps(_probe("q2", "socratic")))
    else:
        lines = [json.dumps(_probe("q1", "socratic", "mul")), json.dumps(_probe("q1", "qa", "mul"))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "answer"
    code, stdout, err = _ask(capsys, str(path), *TINY, "--results", str(tmp_path / "nothing"), "--out", str(out))
    assert code == 1 and expected in err and str(path) in err, err
    assert "Traceback" not in err and not list(tmp_path.glob("answer*"))
    if case == "no_qa":
        assert "query 'q2'" in err and f"{path}:3" in err


def test_a_results_folder_without_model_states_names_the_target(capsys, tmp_path):
    path = _write(tmp_path / "mine.jsonl", [_probe("q1", "socratic"), _probe("q1", "qa")])
    code, _, err = _ask(capsys, path, *TINY, "--results", str(tmp_path / "empty"))
    assert code == 1 and "no model state" in err and "snakemake --cores all swift" in err
    assert "Traceback" not in err


def test_a_run_that_answers_with_another_predictor_is_refused_naming_the_key(capsys, tmp_path):
    """ask scores with gradients; a run switched to another predictor (swift.predictor) has
    calibration cells and ranks of that predictor, so ask stops before scoring anything."""
    cfg = tmp_path / "switched.yaml"
    cfg.write_text("swift: {predictor: length}\n", encoding="utf-8")
    code, _, err = _ask(capsys, "cot", *TINY, "--configfile", str(cfg), "--results", str(tmp_path),
                        "--in-task", "add")
    assert code == 1 and "swift.predictor: length" in err and "gradient features only" in err
    assert "Traceback" not in err


def test_a_strategy_outside_the_runs_tasks_or_unknown_is_refused(capsys, tmp_path):
    code, _, err = _ask(capsys, "cot", *TINY, "--results", str(tmp_path), "--in-task", "add", "mul")
    assert code == 1 and "task(s) ['mul'] are outside the run's tasks" in err
    code, _, err = _ask(capsys, "cot", *TINY, "--results", str(tmp_path))
    assert code == 1 and "--in-task" in err
    code, _, err = _ask(capsys, "nonsense", *TINY, "--results", str(tmp_path), "--in-task", "add")
    assert code == 1 and "neither a JSONL file nor a strategy" in err
    code, _, err = _ask(capsys, "no_such_module:fn", *TINY, "--results", str(tmp_path), "--in-task", "add")
    assert code == 1 and "cannot import module 'no_such_module'" in err
    code, _, err = _ask(capsys, "cot", *TINY, "--results", str(tmp_path), "--out", str(tmp_path / "no/answer"))
    assert code == 1 and "does not exist" in err


# ---------------------------------------------------------------------- verdicts


def test_the_verdict_names_the_tasks_it_helps_and_hurts():
    rows = pd.DataFrame({"context": ["in", "cross", "task:add", "task:sub", "task:mul", "task:word"],
                         "verdict": ["helps", "within noise", "helps", "helps", "hurts", "within noise"]})
    assert verdict_sentence(rows) == "predicted to help add and sub; to hurt mul; within noise on the others (word)"
    rows["verdict"] = "within noise"
    assert verdict_sentence(rows).startswith("within noise on every task")


# ------------------------------------------------------------------- calibration


def _cells(slope, noise, seed=0, n_per=9):
    rng = np.random.default_rng(seed)
    rows = []
    for s in ("cot", "clarify", "evaluate", "corrupt"):
        d = rng.normal(0, 1, n_per)
        delta = 0.05 + slope * d + rng.normal(0, noise, n_per)
        rows += [{"study": s, "strategy": s, "prediction": a, "delta": b} for a, b in zip(d, delta)]
    return pd.DataFrame(rows)


def test_a_calibration_on_a_linear_relation_gives_a_number_with_its_interval():
    cal = calibrate(_cells(slope=0.1, noise=0.01))
    assert cal.usable and cal.reasons == []
    assert abs(cal.line.slope - 0.1) < 0.01 and cal.slope_lo > 0
    assert cal.loso_rmse < cal.sd_delta and cal.n_cells == 36 and len(cal.strategies) == 4
    yhat, lo, hi = cal.predict(2.0)
    assert lo < 0.05 + 0.1 * 2.0 < hi and abs(yhat - 0.25) < 0.02 and hi - lo < 0.1


def test_a_calibration_without_a_relation_is_too_weak_to_give_a_number():
    cal = calibrate(_cells(slope=0.0, noise=0.1))
    assert not cal.usable and cal.predict(1.0) is None
    assert any("leave-one-strategy-out RMSE" in r for r in cal.reasons)
    assert any("contains 0" in r for r in cal.reasons)
    few = calibrate(_cells(slope=0.1, noise=0.01).head(3))
    assert not few.usable and "only 3 validated cell(s)" in few.reasons[0]
    flat = calibrate(_cells(slope=0.1, noise=0.01).assign(delta=0.0))
    assert not flat.usable and "the same in every validated cell" in flat.reasons[0]


def test_calibration_cells_are_the_runs_and_its_replicates_relative_cells_at_the_state(tmp_path):
    cells = _cells(slope=0.1, noise=0.01, n_per=2)
    table = pd.concat([cells.assign(pairing="relative", state="step-3", metric="em"),
                       cells.assign(pairing="own", state="step-3", metric="em"),
                       cells.assign(pairing="relative", state="aggregate", metric="em")])
    for folder in ("validation", "replicates/seed-1/validation", "replicates-x/seed-2/validation"):
        (tmp_path / folder).mkdir(parents=True)
        table.to_csv(tmp_path / folder / "alignment.csv", index=False)
    got, sources = calibration_cells(tmp_path, "step-3", "em")
    assert len(sources) == 3 and len(got) == 3 * len(cells)
    assert set(got["pairing"]) == {"relative"} and set(got["state"]) == {"step-3"}
    shutil.rmtree(tmp_path / "replicates")
    assert len(calibration_cells(tmp_path, "step-3", "em")[0]) == 2 * len(cells)
    assert calibration_cells(tmp_path / "none", "step-3")[0].empty

"""`make bench`'s fidelity part on a results folder laid out as a shipped-model run: model
states that carry their tokenizer and Adam moments, no results/model/base or tokenizer."""
import json
import sys
from pathlib import Path

import pytest
import torch

from swift_study.model.encoding import collate, per_example_loss
from swift_study.model.modeling import load_model
from swift_study.model.states import write_state
from swift_study.model.tokenizer import load_tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from fidelity import bench_run_fidelity, pipeline_states, state_tokenizer  # noqa: E402


def _rec(i, fmt, a, b, split):
    resp = f"{a}加{b}等于{a + b}。\n答案：{a + b}" if fmt == "cot" else f"答案：{a + b}"
    return {"id": f"{split}-{fmt}-{i}", "query_id": f"q{i}", "task": "add", "lang": "zh", "format": fmt,
            "prompt": f"{a}加{b}等于多少？\n", "response": resp, "answer": str(a + b), "split": split}


@pytest.fixture(scope="module")
def shipped_run(tiny_model_dir, tmp_path_factory):
    results = tmp_path_factory.mktemp("bench") / "results"
    tok, model = load_tokenizer(tiny_model_dir), load_model(tiny_model_dir)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    pairs = [(f"{a}加{b}等于多少？\n", f"答案：{a + b}") for a in range(8) for b in range(3)]
    for _ in range(3):  # a few steps so that the state has Adam moments
        b = collate(tok, pairs, 64)
        loss = per_example_loss(model(input_ids=b.input_ids).logits, b.labels).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    sdir = results / "model" / "warmup" / "states" / "step-3"
    sdir.mkdir(parents=True)
    write_state(sdir, model, tok, opt, {"step": 3})
    studies = results / "data" / "studies" / "cot"
    studies.mkdir(parents=True)
    rows = [_rec(i, f, a, b, "probe") for i, (a, b) in enumerate([(1, 2), (3, 4), (5, 1), (2, 7)]) for f in ("cot", "qa")]
    (studies / "probes.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    (results / "data" / "eval").mkdir(parents=True)
    evals = [_rec(10 + i, "qa", a, b, "eval") for i, (a, b) in enumerate([(6, 2), (1, 1), (4, 4), (7, 2), (3, 3)])]
    (results / "data" / "eval" / "qa.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in evals))
    return results


def test_fidelity_runs_on_a_shipped_model_run(shipped_run, tmp_path, repo):
    assert [n for n, _ in pipeline_states(shipped_run)] == ["step-3"]  # no base folder of its own
    sdir = pipeline_states(shipped_run)[0][1]
    assert state_tokenizer(sdir, shipped_run) == sdir  # not results/model/tokenizer
    cfg = tmp_path / "config.yaml"
    cfg.write_text((repo / "config" / "config.yaml").read_text(encoding="utf-8").replace(
        "max_length: 160", "max_length: 64").replace("proj_factor_dim: 256", "proj_factor_dim: 8").replace(
        "proj_dim: 65536", "proj_dim: 1024"), encoding="utf-8")
    lines = []
    rows = bench_run_fidelity(shipped_run, cfg, n_eval=5, out=lines.append)
    assert len(rows) == 1 and rows[0]["adam"]  # the run's own preconditioning
    r = rows[0]
    for key in ("projection", "subset", "all_parameter"):
        assert -1.0 <= r[key][0] <= 1.0
    # the subset (linear layers and embedding) is nearly every parameter of this Llama: its
    # exact gradients agree with all parameters' far better than chance
    assert r["subset"][0] > 0.9
    assert "projection error" in lines[-1] and "subset error" in lines[-1] and "engine/floor" in lines[-1]

"""swift_study.validation.lmeval: local lm-eval tasks, scoring of known outputs, a real HF run."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
import torch
import yaml

from swift_study.data.answers import is_correct
from swift_study.validation.lmeval import (
    count_continuation_tokens, evaluate, metric, read_samples, task_manager, write_task_yamls,
)
from swift_study.data.records import Record, write_jsonl
from swift_study.model.tokenizer import load_tokenizer, train_tokenizer

from tiny_model import tiny_llama



def make_pairs(n: int, seed: int) -> list[tuple[str, str, str, str]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.randint(0, 60), rng.randint(0, 60)
        if i % 2 == 0:
            out.append((f"What is {a} plus {b}?\n", f"Answer: {a + b}", str(a + b), "en"))
        else:
            out.append((f"{a}加{b}等于多少？\n", f"答案：{a + b}", str(a + b), "zh"))
    return out


def records(pairs, prefix: str) -> list[Record]:
    return [Record(id=f"{prefix}{i}:qa", query_id=f"{prefix}{i}", task="add" if i % 3 else "sub", lang=lang,
                   format="qa", prompt=p, response=r, answer=ans, split="eval")
            for i, (p, r, ans, lang) in enumerate(pairs)]


@pytest.fixture(scope="session")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("lmeval")
    train_tokenizer([p + r for p, r, _, _ in make_pairs(400, 0)], 300, root / "tok", model_max_length=128)
    tok = load_tokenizer(root / "tok")
    model = tiny_llama(tok, seed=0)
    model.save_pretrained(root / "base")
    tok.save_pretrained(root / "base")
    # a LoRA adapter with non-zero B, so it changes the outputs
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    peft_model = get_peft_model(tiny_llama(tok, seed=0),
                                LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"],
                                           init_lora_weights=False, task_type="CAUSAL_LM"))
    peft_model.save_pretrained(root / "adapter")
    in_recs = records(make_pairs(8, 1), "in")
    cross_recs = records(make_pairs(6, 2), "cross")
    write_jsonl(root / "data" / "in.jsonl", in_recs)
    write_jsonl(root / "data" / "cross.jsonl", cross_recs)
    cwd = os.getcwd()
    os.chdir(root / "data")  # relative paths must still resolve against the YAML-writing call
    try:
        names = write_task_yamls({"in_s": Path("in.jsonl"), "cross_s": Path("cross.jsonl")}, root / "tasks", 16)
    finally:
        os.chdir(cwd)
    return {"root": root, "tok": tok, "names": names, "in": in_recs, "cross": cross_recs}


def test_yamls_written_and_load(env):
    assert env["names"] == ["in_s_em", "in_s_nll", "cross_s_em", "cross_s_nll"]
    cfg = yaml.safe_load((env["root"] / "tasks" / "in_s_em.yaml").read_text())
    path = cfg["dataset_kwargs"]["data_files"]["test"]
    assert Path(path).is_absolute() and Path(path).exists()
    assert cfg["target_delimiter"] == "" and cfg["generation_kwargs"]["do_sample"] is False
    tm = task_manager(env["root"] / "tasks")
    assert set(env["names"]) <= set(tm.all_tasks)
    tasks = tm.load(list(env["names"]))["tasks"]
    em, nll = tasks["in_s_em"], tasks["in_s_nll"]
    assert em.OUTPUT_TYPE == "generate_until" and nll.OUTPUT_TYPE == "loglikelihood"
    docs = list(em.test_docs())
    assert len(docs) == 8 and docs[0]["prompt"] == env["in"][0].prompt
    assert em.doc_to_text(docs[0]) == env["in"][0].prompt  # trailing newline kept
    assert nll.doc_to_target(docs[0]) == env["in"][0].response


# ------------------------------------------------------------ scripted model: known outputs

def scripted_generations(recs: list[Record]) -> tuple[dict[str, str], list[int]]:
    """A generation per prompt and the hand-computed em (first-marker rule)."""
    gens, em = {}, []
    wrong = lambda a: str(int(a) + 1)  # noqa: E731
    for i, r in enumerate(recs):
        mark = "Answer: " if r.lang == "en" else "答案："
        kind = i % 8
        if kind == 0:    # plain, correct
            g, e = f"{mark}{r.answer}", 1
        elif kind == 1:  # CoT steps then the answer line
            g, e = f"Step 1: add the ones.\nStep 2: carry.\n{mark}{r.answer}", 1
        elif kind == 2:  # plain, wrong
            g, e = f"{mark}{wrong(r.answer)}", 0
        elif kind == 3:  # no marker at all: strict, scores 0
            g, e = f"{r.answer}", 0
        elif kind == 4:  # run-on junk after a correct answer with a final period
            g, e = f"{mark}{r.answer}.\nWhat is 1 plus 1?\n{mark}2", 1
        elif kind == 5:  # extra whitespace
            g, e = f"{mark}  {r.answer}  ", 1
        elif kind == 6:  # first marker wrong, later one right: the first counts
            g, e = f"{mark}{wrong(r.answer)}\n{mark}{r.answer}", 0
        else:            # CoT, wrong final answer
            g, e = f"Step 1: guess.\n{mark}{wrong(r.answer)}", 0
        gens[r.prompt] = g
        em.append(e)
    return gens, em


def make_scripted_lm(gens: dict[str, str], logliks: dict[tuple[str, str], tuple[float, bool]]):
    from lm_eval.api.model import LM

    class ScriptedLM(LM):
        def __init__(self):
            super().__init__()
            self.contexts: list[str] = []
            self.gen_kwargs: list[dict] = []

        def generate_until(self, requests, disable_tqdm: bool = False):
            out = []
            for req in requests:
                ctx, kw = req.args
                self.contexts.append(ctx)
                self.gen_kwargs.append(kw)
                out.append(gens[ctx])
            return out

        def loglikelihood(self, requests, disable_tqdm: bool = False):
            return [logliks[tuple(req.args)] for req in requests]

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
            raise NotImplementedError

    return ScriptedLM()


def test_scoring_of_scripted_outputs(env):
    recs = env["in"] + env["cross"]
    gens, expected = scripted_generations(recs)
    logliks = {(r.prompt, r.response): (-(i + 1) * 0.5, i % 2 == 0) for i, r in enumerate(recs)}
    lm = make_scripted_lm(gens, logliks)
    root = env["root"]
    res = evaluate(root / "base", root / "tasks", env["names"], root / "scripted.json",
                   root / "scripted.jsonl", lm=lm)
    exp_in, exp_cross = expected[:8], expected[8:]
    assert metric(res, "in_s_em", "exact_match") == pytest.approx(sum(exp_in) / 8)
    assert metric(res, "cross_s_em", "exact_match") == pytest.approx(sum(exp_cross) / 6)
    assert metric(res, "in_s_nll", "acc") == pytest.approx(4 / 8)
    # the model saw the prompts exactly, with greedy settings and the blank-line stop
    assert set(lm.contexts) == {r.prompt for r in recs}
    assert all(kw["until"] == ["\n\n"] and kw["do_sample"] is False and kw["max_gen_toks"] == 16
               for kw in lm.gen_kwargs)
    rows = read_samples(root / "scripted.jsonl")
    assert len(rows) == 14
    by_id = {r["id"]: r for r in rows}
    for i, rec in enumerate(recs):
        row = by_id[rec.id]
        assert row["em"] == expected[i], (rec.id, gens[rec.prompt], row["filtered_answer"])
        assert row["generation"] == gens[rec.prompt]
        assert row["answer"] == rec.answer and row["query_id"] == rec.query_id and row["task"] == rec.task
        assert row["eval_set"] == ("in_s" if rec.id.startswith("in") else "cross_s")
        assert row["loglik"] == pytest.approx(-(i + 1) * 0.5)
        assert row["greedy_match"] == int(i % 2 == 0)
        n = count_continuation_tokens(env["tok"], rec.prompt, rec.response)
        assert row["n_tokens"] == n and row["nll_per_token"] == pytest.approx((i + 1) * 0.5 / n)
        # agrees with answers.is_correct wherever the generation has at most one marker
        if gens[rec.prompt].count("Answer:") + gens[rec.prompt].count("答案：") == 1:
            assert row["em"] == int(is_correct(gens[rec.prompt], rec.answer))
    assert by_id[recs[1].id]["filtered_answer"] == recs[1].answer  # CoT scored on its final line
    assert by_id[recs[3].id]["filtered_answer"] == "[invalid]"
    json.loads((root / "scripted.json").read_text())  # valid JSON


# ------------------------------------------------------------ the real HF model (and a LoRA adapter)

def test_real_hf_run_with_and_without_adapter(env):
    root = env["root"]
    names = ["in_s_em", "in_s_nll"]
    res = evaluate(root / "base", root / "tasks", names, root / "hf.json", root / "hf.jsonl",
                   batch_size=4, device="cpu")
    on_disk = json.loads((root / "hf.json").read_text())
    assert "samples" not in on_disk and set(names) <= set(on_disk["results"])
    assert on_disk["swift_study"]["adapter_dir"] is None
    em = metric(res, "in_s_em", "exact_match")
    assert em is not None and 0.0 <= em <= 1.0
    rows = read_samples(root / "hf.jsonl")
    assert len(rows) == 8
    for row in rows:
        assert row["em"] in (0, 1) and isinstance(row["generation"], str)
        assert row["loglik"] < 0 and row["n_tokens"] > 0
        assert row["nll_per_token"] == pytest.approx(-row["loglik"] / row["n_tokens"])
    # loglik is the training loss of the response tokens (prompt masked exactly as in training,
    # without the EOS target): check one example by hand
    from swift_study.model.encoding import encode_pair
    from swift_study.model.modeling import load_model

    model = load_model(root / "base")
    rec = env["in"][0]
    ids, labels = encode_pair(env["tok"], rec.prompt, rec.response, 128)
    ids, labels = ids[:-1], labels[:-1]  # drop the EOS target
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0, :-1].float(), -1)
    tgt = torch.tensor(labels[1:])
    mask = tgt != -100
    ll = float(logp[mask].gather(-1, tgt[mask].unsqueeze(-1)).sum())
    row0 = next(r for r in rows if r["id"] == rec.id)
    assert row0["loglik"] == pytest.approx(ll, abs=1e-3)
    assert row0["n_tokens"] == int(mask.sum())

    res_a = evaluate(root / "base", root / "tasks", ["in_s_nll"], root / "hfa.json", root / "hfa.jsonl",
                     adapter_dir=root / "adapter", batch_size=4, device="cpu", limit=4)
    rows_a = read_samples(root / "hfa.jsonl")
    assert len(rows_a) == 4 and all(r["em"] is None for r in rows_a)
    assert res_a["swift_study"]["adapter_dir"] == str((root / "adapter").resolve())
    base_ll = {r["id"]: r["loglik"] for r in rows}
    assert any(abs(r["loglik"] - base_ll[r["id"]]) > 1e-4 for r in rows_a)  # the adapter was applied

"""A Chinese-LLaMA-2-style local model directory: a SentencePiece ``tokenizer.model``
loaded as ``LlamaTokenizer`` (BOS on, no pad token) next to a ``LlamaForCausalLM``."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

spm = pytest.importorskip("sentencepiece")

from swift_study.pipeline.checks import check_local_model  # noqa: E402
from swift_study.model.encoding import IGNORE_INDEX, encode_pair  # noqa: E402
from swift_study.swift.gradients import GradientArgs, featurize  # noqa: E402
from swift_study.data.tasks import generate_queries  # noqa: E402
from swift_study.model.tokenizer import load_tokenizer  # noqa: E402

from parallel import CORES  # noqa: E402

PAIRS = [("计算12+3。\n", "答案：15"), ("请问９和７３的和是多少？\n", "答案：82"),
         ("Reverse the sequence q k u d.\n", "Answer: d u k q"), ("将序列 b z s 倒序。\n", "答案：s z b")]


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    """Train a small SentencePiece BPE model (byte fallback, split digits, LLaMA's special
    ids) on suite text and save it, Chinese-LLaMA-2 style, with a tiny Llama."""
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("cn_llama")
    texts = [p + r for p, r in PAIRS]
    for task in ("add", "sub", "compare", "reverse", "sort", "word"):
        for lang in ("zh", "en"):
            texts += [q.raw + " " + q.canonical + " " + q.answer for q in generate_queries(task, lang, 60, 0)]
    (root / "corpus.txt").write_text("\n".join(t.replace("\n", " ") for t in texts), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(root / "corpus.txt"), model_prefix=str(root / "tokenizer"), vocab_size=700,
        model_type="bpe", byte_fallback=True, split_digits=True, character_coverage=1.0, unk_id=0,
        bos_id=1, eos_id=2, pad_id=-1, num_threads=1, minloglevel=2)
    model_dir = root / "model"
    model_dir.mkdir()
    (model_dir / "tokenizer.model").write_bytes((root / "tokenizer.model").read_bytes())
    (model_dir / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "add_bos_token": True, "add_eos_token": False, "legacy": False}), encoding="utf-8")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=700, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64, max_position_embeddings=128, bos_token_id=1, eos_token_id=2,
                      tie_word_embeddings=False)
    LlamaForCausalLM(cfg).save_pretrained(model_dir)
    return model_dir


def test_loads_like_chinese_llama(llama_dir):
    check_local_model(llama_dir)  # config, weights, tokenizer, vocabulary within the embedding
    tok = load_tokenizer(llama_dir)
    assert type(tok).__name__.startswith("LlamaTokenizer") and len(tok) == 700
    assert tok("答案：1")["input_ids"][0] == tok.bos_token_id == 1  # BOS on by default
    assert tok.pad_token == tok.eos_token  # no pad token of its own: EOS stands in
    proc = subprocess.run([sys.executable, "-m", "swift_study.cli", "check-model", str(llama_dir)],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "LlamaForCausalLM" in proc.stdout and "LlamaTokenizer" in proc.stdout


def test_prompt_response_boundary(llama_dir):
    """The loss covers exactly the response (+ EOS), whatever SentencePiece merges."""
    tok = load_tokenizer(llama_dir)
    for prompt, response in PAIRS:
        ids, labels = encode_pair(tok, prompt, response, 128)
        target = [t for t, lab in zip(ids, labels) if lab != IGNORE_INDEX]
        assert target[-1] == tok.eos_token_id
        assert tok.decode(target[:-1]) == response, (prompt, response)
        assert tok.decode([t for t, lab in zip(ids, labels) if lab == IGNORE_INDEX]) == prompt


def test_gradients_on_the_local_model(llama_dir):
    from swift_study.model.modeling import load_model

    tok = load_tokenizer(llama_dir)
    model = load_model(llama_dir)
    base = dict(proj_factor_dim=8, proj_dim=256, device="cpu", chunk_size=2)
    fast = featurize(model, tok, PAIRS, GradientArgs(**base), progress=False)
    exact = featurize(model, tok, PAIRS, GradientArgs(engine="exact", **base), progress=False)
    assert np.isfinite(fast).all() and np.abs(fast).max() > 0
    np.testing.assert_allclose(fast, exact, rtol=1e-3, atol=1e-4 * np.abs(exact).max())



@pytest.mark.slow
def test_whole_tiny_chain_on_the_local_model_with_lora_states(llama_dir, tmp_path):
    """model.local_dir through every stage, with LESS's LoRA model states: adapter warm-up
    states (trl, peft) with Adam moments, Adam-preconditioned gradient features over the
    LoRA weights, EK-FAC of an adapter state, full validation retraining from the local
    base (trl) and lm-eval generation with the SentencePiece tokenizer, alignment, league
    and the report; no tokenizer training or pretraining. (Full-model warm-up states run
    in the tiny preset's own chain, tests/test_workflow.py: one run covers both paths here.)"""
    import pandas as pd

    from swift_study.swift.state_scores import load_state_npz
    from swift_study.core.offline import offline_env

    repo = __import__("pathlib").Path(__file__).resolve().parents[1]
    # one training seed, one feature shard, the predictors that read a model state: the
    # chain, not the statistics, is under test (shards and the text-only predictors run in
    # the tiny preset's own chain)
    override = tmp_path / "local.yaml"
    override.write_text(f"model: {{local_dir: '{llama_dir}'}}\nvalidation: {{seeds: [0]}}\n"
                        "warmup: {method: lora, lora: {r: 4, alpha: 8}}\n"
                        "baselines: {predictors: [repsim, pilot]}\n"
                        "swift: {precondition: adam, shards: 1, gradients: {subset: lora}}\n"
                        "budget: {gradients: {subset: lora}}\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory", str(tmp_path),
         "--configfile", str(repo / "config" / "tiny.yaml"), str(override),
         "--cores", CORES, "--quiet", "rules"], capture_output=True, text=True, env=offline_env(), timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    r = tmp_path / "results-tiny"
    assert not (r / "model/tokenizer").exists() and not (r / "model/base").exists()
    st = r / "model/warmup/states/step-3"
    assert json.loads((st / "state.json").read_text())["step"] == 3
    assert (st / "adapter_config.json").exists() and not (st / "model.safetensors").exists()
    assert load_tokenizer(st).bos_token_id == 1  # the local tokenizer, saved with the adapter
    summary = pd.read_csv(r / "swift/summary.csv")
    assert set(summary["state"]) == {"step-3", "aggregate"}  # no adam scores at the base (no moments)
    assert summary["s_strategy"].notna().all()
    meta = json.loads((r / "swift/features/step-3/shard-0-of-1/eval.json").read_text())
    assert meta["args"]["subset"] == "lora" and meta["names"] and all("lora_" in n for n in meta["names"])
    second = load_state_npz(r / "swift/ekfac/step-3/cot.npz")  # EK-FAC over the LoRA matrices
    assert second.dots.shape == (8, 32) and (second.probe_norms > 0).all()
    assert "lora_A" in (r / "logs/ekfac_scores/step-3.log").read_text(encoding="utf-8")
    samples = [json.loads(line) for line in open(r / "eval/B_seed-0/samples.jsonl", encoding="utf-8")]
    gens = [s for s in samples if s.get("generation") is not None]
    assert gens and all("<s>" not in s["generation"] for s in gens)  # no BOS text leaking into generations
    assert all(s["em"] in (0, 1) for s in gens)
    assert all(s["nll_per_token"] > 0 for s in samples if s.get("nll_per_token") is not None)
    assert (r / "report.html").stat().st_size > 0 and (r / "alignment/league.csv").exists()

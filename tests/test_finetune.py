"""swift_study.model.finetune: the one training function (pretraining, warm-up, validation).

Small and quick: a hidden-32 Llama on a few hundred synthetic en/zh examples.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from swift_study.model.encoding import IGNORE_INDEX, collate, encode_pair, per_example_loss
from swift_study.model.finetune import (
    ADAPTER_BASE_JSON, TrainArgs,
    load_train_summary, train,
)
from swift_study.model.modeling import load_model
from swift_study.model.states import MOMENTS_NAME, adapter_base_dir, load_moments
from swift_study.model.tokenizer import load_tokenizer, train_tokenizer

from tiny_model import tiny_llama

MAX_LEN = 64


def make_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.randint(0, 60), rng.randint(0, 60)
        if i % 2 == 0:
            out.append((f"What is {a} plus {b}?\n", f"Answer: {a + b}"))
        else:
            out.append((f"{a}加{b}等于多少？\n", f"答案：{a + b}"))
    return out


@pytest.fixture(scope="session")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("ft")
    train_tokenizer([p + r for p, r in make_pairs(400, 0)], 300, root / "tok", model_max_length=128)
    tok = load_tokenizer(root / "tok")
    model = tiny_llama(tok, seed=0)
    model.save_pretrained(root / "base")
    tok.save_pretrained(root / "base")
    pairs = make_pairs(256, 1)
    return {
        "root": root,
        "tok": tok,
        "base": root / "base",
        "examples": [{"prompt": p, "completion": c} for p, c in pairs],
        "pairs": pairs,
    }


def state_dict_of(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def mean_loss(model, tok, pairs) -> float:
    model.eval()
    batch = collate(tok, pairs, MAX_LEN)
    with torch.no_grad():
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    return float(per_example_loss(logits, batch.labels).mean())


def args(**kw) -> TrainArgs:
    base = dict(method="full", learning_rate=3e-3, num_epochs=1, batch_size=16, max_length=MAX_LEN,
                seed=0, logging_steps=1, save_steps=0, device="cpu")
    base.update(kw)
    return TrainArgs(**base)


# ---------------------------------------------------------------- full run (shared)

@pytest.fixture(scope="session")
def full_run(env):
    out = train(env["base"], env["tok"], env["examples"], env["root"] / "full", args(export_steps=[0, 3, 16]),
                env["root"] / "work_full")
    return out


def test_full_reduces_loss_and_writes_outputs(env, full_run):
    s = load_train_summary(full_run)
    assert s["steps"] == 16 and s["kind"] == "prompt_completion" and s["examples"] == 256
    assert s["final_loss"] < s["first_loss"]
    assert s["wall_s"] > 0 and s["train_runtime_s"] > 0
    assert s["args"]["method"] == "full"
    before = mean_loss(load_model(env["base"]), env["tok"], env["pairs"][:64])
    after = mean_loss(load_model(full_run), env["tok"], env["pairs"][:64])
    assert after < before - 0.2, (before, after)
    assert (full_run / "tokenizer.json").exists() and (full_run / "config.json").exists()
    # no temp dirs left, checkpoints cleaned after success
    assert not [p for p in full_run.parent.iterdir() if p.name.startswith(".full.")]
    assert not list((env["root"] / "work_full").glob("checkpoint-*"))


def test_lora_reduces_loss_and_saves_adapter(env):
    out = train(env["base"], env["tok"], env["examples"], env["root"] / "lora",
                args(method="lora", learning_rate=5e-3, lora_r=4, lora_alpha=8), env["root"] / "work_lora")
    s = load_train_summary(out)
    assert s["final_loss"] < s["first_loss"]
    assert (out / "adapter_config.json").exists() and (out / "adapter_model.safetensors").exists()
    assert not (out / "model.safetensors").exists()
    assert adapter_base_dir(out) == env["base"].resolve()
    assert (out / "adapter_base.txt").read_text().strip() == str(env["base"].resolve())
    assert json.loads((out / ADAPTER_BASE_JSON).read_text())["base_model_dir"] == str(env["base"].resolve())
    from peft import PeftModel

    model = PeftModel.from_pretrained(load_model(env["base"]), str(out))
    before = mean_loss(load_model(env["base"]), env["tok"], env["pairs"][:64])
    after = mean_loss(model, env["tok"], env["pairs"][:64])
    assert after < before - 0.1, (before, after)
    assert s["trainable_params"] < 0.5 * sum(p.numel() for p in load_model(env["base"]).parameters())


def test_lora_model_states_are_adapters_with_moments_and_give_lora_gradients(env):
    """LESS's model states: a LoRA warm-up exports adapters (with their base and the Adam
    moments of the LoRA weights); a state loads unmerged for gradients over the LoRA
    weights (Adam-preconditioned) and merged to train from."""
    from swift_study.swift.gradients import GradientArgs, featurize
    from swift_study.model.states import ModelState

    out = train(env["base"], env["tok"], env["examples"], env["root"] / "lora_states",
                args(method="lora", learning_rate=5e-3, lora_r=4, lora_alpha=8, export_steps=[2, 6]),
                env["root"] / "work_lora_states")
    st = out / "states" / "step-6"
    assert (st / "adapter_config.json").exists() and not (st / "model.safetensors").exists()
    assert adapter_base_dir(st) == env["base"].resolve()
    ms = ModelState(st)
    assert ms.is_adapter and ms.has_moments and ms.learning_rate() > 0
    adam = ms.adam()
    assert adam.step == 6 and adam.moments and all("lora_" in n for n in adam.moments)
    assert ms.scored_with("adam") and ms.preconditioner("adam").step == 6 and ms.preconditioner("none") is None
    base = ModelState(env["base"])  # never optimized: no moments, so no adam scores
    assert not base.scored_with("adam") and base.scored_with("none") and base.preconditioner("adam") is None
    peft_model = load_model(st)
    names = [n for n, _ in peft_model.named_parameters() if "lora_" in n]
    assert sorted(names) == sorted(adam.moments)  # the moments are keyed like the loaded state
    ga = GradientArgs(subset="lora", projection="none", device="cpu", max_length=MAX_LEN)
    plain = featurize(peft_model, env["tok"], env["pairs"][:6], ga, progress=False)
    pre = featurize(load_model(st), env["tok"], env["pairs"][:6], ga, adam=adam, progress=False)
    assert plain.shape[1] == sum(p.numel() for n, p in peft_model.named_parameters() if "lora_" in n)
    assert np.abs(plain).sum() > 0 and not np.allclose(plain, pre)
    merged = load_model(st, merge=True)
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    assert all(p.requires_grad for p in merged.parameters())  # trainable, as a start state must be
    x = env["tok"](env["pairs"][0][0], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(merged(x).logits, peft_model(x).logits, atol=1e-4, rtol=1e-4)


def test_from_config_maps_sections():
    a = TrainArgs.from_config({"method": "lora", "learning_rate": 5e-3, "num_epochs": 2, "batch_size": 8,
                               "lora": {"r": 8, "alpha": 16, "dropout": 0.1}, "seeds": [0], "eval": {}},
                              seed=3, max_length=99)
    assert (a.method, a.lora_r, a.lora_alpha, a.lora_dropout, a.seed, a.max_length) == ("lora", 8, 16, 0.1, 3, 99)
    w = TrainArgs.from_config({"method": "full", "export_steps": [25, 10]})
    assert w.export_steps == [10, 25]


# ---------------------------------------------------------------- trl tokenization == encode_pair

def test_trl_masking_matches_encode_pair(env):
    from trl import SFTConfig, SFTTrainer

    long_prompt = "What is " + " plus ".join(str(i) for i in range(40)) + "?\n"
    exs = env["examples"][:12] + [{"prompt": long_prompt, "completion": "Answer: 780"}]
    cfg = SFTConfig(output_dir=str(env["root"] / "work_tok"), use_cpu=True, bf16=False,
                    activation_checkpointing=False, report_to="none", max_length=MAX_LEN,
                    dataset_num_proc=None, packing=False)
    from datasets import Dataset

    tr = SFTTrainer(model=load_model(env["base"]), args=cfg, processing_class=env["tok"],
                    train_dataset=Dataset.from_list(exs))
    rows = list(tr.train_dataset)
    assert len(rows) == 12  # trl DROPS the example whose prompt fills max_length ...
    for ex, row in zip(exs[:12], rows):
        ids, labels = encode_pair(env["tok"], ex["prompt"], ex["completion"], MAX_LEN)
        assert row["input_ids"] == ids
        assert row["labels"] == labels  # prompt masked with -100, EOS is a target
        assert labels[-1] == env["tok"].eos_token_id and IGNORE_INDEX in labels
    # ... while encode_pair keeps it with a lone EOS target (the swift study scores it; training never sees it)
    ids, labels = encode_pair(env["tok"], long_prompt, "Answer: 780", MAX_LEN)
    assert len(ids) == MAX_LEN and [l for l in labels if l != IGNORE_INDEX] == [env["tok"].eos_token_id]


# ---------------------------------------------------------------- determinism, resume, export

def test_deterministic_same_seed(env, full_run):
    again = train(env["base"], env["tok"], env["examples"], env["root"] / "full_again",
                  args(export_steps=[0, 3, 16]), env["root"] / "work_full_again")
    a, b = state_dict_of(full_run), state_dict_of(again)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = train(env["base"], env["tok"], env["examples"], env["root"] / "full_seed1",
                  args(seed=1, max_steps=3), env["root"] / "work_seed1")
    c = state_dict_of(other)
    assert not all(torch.equal(a[k], c[k]) for k in a)


class Kill(Exception):
    pass


def _killer(at_step: int):
    from transformers import TrainerCallback

    class KillAt(TrainerCallback):
        def on_step_end(self, targs, state, control, **kw):
            if state.global_step == at_step:
                raise Kill(f"killed at step {at_step}")

    return KillAt()


def test_resume_after_kill_equals_uninterrupted(env):
    kw = dict(max_steps=12, save_steps=4, export_steps=[2, 6, 10])
    ref = train(env["base"], env["tok"], env["examples"], env["root"] / "ref", args(**kw), env["root"] / "work_ref")
    work = env["root"] / "work_killed"
    out = env["root"] / "resumed"
    with pytest.raises(Kill):
        train(env["base"], env["tok"], env["examples"], out, args(**kw), work, callbacks=[_killer(7)])
    assert not out.exists()  # atomic: nothing half-written
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".resumed.")]
    assert sorted(p.name for p in work.glob("checkpoint-*")) == ["checkpoint-4"]
    assert sorted(p.name for p in (work / "states").iterdir()) == ["step-2", "step-6"]
    train(env["base"], env["tok"], env["examples"], out, args(**kw), work)
    s = load_train_summary(out)
    assert s["resumed_from"] == "checkpoint-4" and s["steps"] == 12
    steps_logged = [h["step"] for h in s["log_history"] if "loss" in h]
    assert steps_logged[-1] == 12 and 5 in steps_logged  # log history continues after step 4
    a, b = state_dict_of(ref), state_dict_of(out)
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed run differs from uninterrupted run"
    for step in (2, 6, 10):
        sa = state_dict_of(ref / "states" / f"step-{step}")
        sb = state_dict_of(out / "states" / f"step-{step}")
        assert all(torch.equal(sa[k], sb[k]) for k in sa), step
        ma, mb = load_moments(ref / "states" / f"step-{step}"), load_moments(out / "states" / f"step-{step}")
        assert all(torch.equal(ma["moments"][n]["exp_avg_sq"], mb["moments"][n]["exp_avg_sq"])
                   for n in ma["moments"])


def test_state_export(env, full_run):
    states = full_run / "states"
    assert sorted(p.name for p in states.iterdir()) == ["step-0", "step-16", "step-3"]
    # step 0 is the starting model, with no moments yet
    base_sd, s0 = state_dict_of(env["base"]), state_dict_of(states / "step-0")
    assert all(torch.equal(base_sd[k], s0[k]) for k in base_sd)
    m0 = load_moments(states / "step-0")
    assert m0["step"] == 0 and m0["moments"] == {}
    # the last exported state is the final model
    fin, s16 = state_dict_of(full_run), state_dict_of(states / "step-16")
    assert all(torch.equal(fin[k], s16[k]) for k in fin)
    # moments keyed by parameter names, tied embeddings once
    model = load_model(states / "step-3")
    names = dict(model.named_parameters())
    m3 = load_moments(states / "step-3" / MOMENTS_NAME)  # the file itself or its dir
    assert m3["step"] == 3 and m3["betas"] == (0.9, 0.999) and m3["eps"] == pytest.approx(1e-8)
    assert set(m3["moments"]) == set(names)
    assert "model.embed_tokens.weight" in m3["moments"] and "lm_head.weight" not in m3["moments"]
    for n, mom in m3["moments"].items():
        assert mom["exp_avg"].shape == names[n].shape and (mom["exp_avg_sq"] >= 0).all()
    assert any(mom["exp_avg"].abs().sum() > 0 for mom in m3["moments"].values())
    # learning rates: cosine schedule, no warm-up, 16 steps
    st = json.loads((states / "step-3" / "state.json").read_text())
    cos = lambda k: 3e-3 * 0.5 * (1 + math.cos(math.pi * k / 16))  # noqa: E731
    assert st["step"] == 3 and st["learning_rate"] == pytest.approx(cos(2))
    assert st["next_learning_rate"] == pytest.approx(cos(3))
    logged = {h["step"]: h for h in load_train_summary(full_run)["log_history"] if "loss" in h}
    assert st["learning_rate"] == pytest.approx(logged[3]["learning_rate"])
    assert st["loss"] == pytest.approx(logged[3]["loss"], rel=1e-5)
    assert st["epoch"] == pytest.approx(3 / 16)
    assert (states / "step-3" / "tokenizer.json").exists()


# ---------------------------------------------------------------- text pretraining

def test_text_pretraining_from_init_model(env):
    tok = env["tok"]
    model = tiny_llama(tok, seed=5)
    texts = [{"text": p + r} for p, r in make_pairs(256, 3)]
    from trl import SFTConfig, SFTTrainer
    from datasets import Dataset

    # trl's text path: whole text is the target, EOS appended
    tr = SFTTrainer(model=tiny_llama(tok, seed=5),
                    args=SFTConfig(output_dir=str(env["root"] / "work_tok2"), use_cpu=True, bf16=False,
                                   activation_checkpointing=False, report_to="none", max_length=MAX_LEN),
                    processing_class=tok, train_dataset=Dataset.from_list(texts[:4]))
    row = tr.train_dataset[0]
    assert row["input_ids"] == tok(texts[0]["text"])["input_ids"] + [tok.eos_token_id]
    assert row["labels"] == row["input_ids"]

    out = train(None, tok, texts, env["root"] / "pre", args(learning_rate=5e-3, num_epochs=2),
                env["root"] / "work_pre", init_model=model, log=lambda m: None)
    s = load_train_summary(out)
    assert s["kind"] == "text" and s["steps"] == 32 and s["final_loss"] < s["first_loss"] - 0.3
    assert s["base_model_dir"] is None
    loaded = load_model(out)
    assert loaded.config.hidden_size == 32
    assert load_tokenizer(out).eos_token_id == tok.eos_token_id


def test_rejects_mixed_or_empty_examples(env):
    with pytest.raises(ValueError):
        train(env["base"], env["tok"], [], env["root"] / "x", args(), env["root"] / "wx")
    with pytest.raises(ValueError, match="mix"):
        train(env["base"], env["tok"], [{"text": "a"}, {"prompt": "b", "completion": "c"}],
              env["root"] / "x", args(), env["root"] / "wx")


def test_work_dir_of_a_different_run_is_not_resumed(env):
    work, kw = env["root"] / "work_fp", dict(max_steps=6, save_steps=2, keep_checkpoints=True)
    first = train(env["base"], env["tok"], env["examples"], env["root"] / "fp1", args(**kw), work)
    assert sorted(p.name for p in work.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-6"]
    same = train(env["base"], env["tok"], env["examples"], env["root"] / "fp2", args(**kw), work)
    assert load_train_summary(same)["resumed_from"] == "checkpoint-6"
    a, b = state_dict_of(first), state_dict_of(same)
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = train(env["base"], env["tok"], env["examples"], env["root"] / "fp3",
                  args(learning_rate=1e-3, **kw), work)
    s = load_train_summary(other)
    assert s["resumed_from"] is None and s["steps"] == 6

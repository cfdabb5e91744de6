"""swift-study plan: the cost planner on the meta device, and its check against benchmark files."""
import json
from pathlib import Path

import pandas as pd
import pytest

from swift_study.pipeline.config import load_config
from swift_study.pipeline.plan_check import compare_benchmarks
from swift_study.pipeline.plan_costs import Lengths, Rates, expected_max, lmeval_work
from swift_study.pipeline.planner import PROCESS_MB, Tokens, hf_config, plan_markdown, plan_study

REPO = Path(__file__).resolve().parents[1]
TOKENS = Tokens(eval=20.0, train=30.0, response=6.0)
LLAMA_7B_ZH = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
               "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
               "num_key_value_heads": 32, "vocab_size": 55296, "max_position_embeddings": 4096,
               "rms_norm_eps": 1e-5, "tie_word_embeddings": False}


@pytest.fixture(scope="module")
def tiny_cfg():
    return load_config(REPO / "config" / "tiny.yaml")


@pytest.fixture(scope="module")
def tiny_plan(tiny_cfg):
    return plan_study(tiny_cfg, tokens=TOKENS, flops_per_s=1e9, overhead_s=10.0)


def row(plan, rule):
    return plan.set_index("rule").loc[rule]


def test_plan_counts_the_tiny_models_parameters_and_features_like_the_real_model(tiny_cfg, tiny_plan):
    """Parameters and feature dimension on the meta device equal those of a real model."""
    from transformers import AutoModelForCausalLM

    from swift_study.swift.gradients.engine import GradientArgs, feature_dim, resolve_subset

    real = AutoModelForCausalLM.from_config(hf_config(tiny_cfg))
    n = sum(p.numel() for p in {id(p): p for p in real.parameters()}.values())
    assert tiny_plan.attrs["n_params"] == n
    args = GradientArgs.from_mapping(tiny_cfg["swift"]["gradients"], device="cpu")
    sf = row(tiny_plan, "state_features")
    assert sf["feature_dim"] == feature_dim(real, args) == tiny_cfg["swift"]["gradients"]["proj_dim"]
    assert sf["params_touched"] == resolve_subset(real, args).numel
    assert row(tiny_plan, "budget_features")["feature_dim"] == tiny_cfg["budget"]["gradients"]["proj_dim"]


def test_plan_flops_follow_the_study_shape(tiny_cfg, tiny_plan):
    """Swift FLOPs = 6 N tokens rows states, the eval set once (state_features) and each
    study's probes, strategy and plain QA (probe_features); store = 4 bytes x rows x dim x states."""
    n = tiny_plan.attrs["n_params"]
    s = tiny_cfg["suite"]
    rows = s["sizes"]["eval"] * len(s["tasks"]) * len(s["langs"])
    probe_rows = 2 * tiny_cfg["swift"]["n_probes"] * 2  # 2 studies, each its probes and their QA matches
    states = 2  # base and step-3
    sf = row(tiny_plan, "state_features")
    assert sf["flops"] == pytest.approx(6.0 * n * TOKENS.eval * rows * states)
    assert sf["store_gb"] * 1e9 == pytest.approx(4.0 * rows * 512 * states)
    assert sf["jobs"] == tiny_cfg["swift"]["shards"]
    pf = row(tiny_plan, "probe_features")
    assert pf["flops"] == pytest.approx(6.0 * n * TOKENS.train * probe_rows * states)
    assert pf["jobs"] == tiny_cfg["swift"]["shards"] * 2
    # 1e9 FLOP/s and 10 s per job; reading each state's weights (4 bytes each) at the disk rate
    assert sf["seconds"] == pytest.approx(sf["flops"] / 1e9 + 10.0 * sf["jobs"], rel=0.01)
    ft = row(tiny_plan, "finetune")
    assert ft["jobs"] == 5 * 2  # B, B+cot, ctrl+cot, B+corrupt, ctrl+corrupt; two seeds
    ratio = tiny_plan[tiny_plan["rule"] == "ratio"].iloc[0]
    totals = tiny_plan[tiny_plan["rule"] == "total"].set_index("side")
    assert ratio["flops"] == pytest.approx(totals.loc["validation", "flops"] / totals.loc["swift", "flops"])
    assert ratio["flops"] > 1  # retraining every model costs more than one gradient pass
    # twice the eval examples: twice the eval features' FLOPs
    cfg2 = {**tiny_cfg, "suite": {**s, "sizes": {**s["sizes"], "eval": 2 * s["sizes"]["eval"]}}}
    sf2 = row(plan_study(cfg2, tokens=TOKENS, flops_per_s=1e9), "state_features")
    assert sf2["flops"] / sf["flops"] == pytest.approx(2.0)  # the probes are their own rule's


def test_plan_of_a_chinese_llama_2_7b_config(tmp_path):
    """The paper preset on a 7B-shaped config.json: built on the meta device in seconds."""
    (tmp_path / "config.json").write_text(json.dumps(LLAMA_7B_ZH))
    cfg = load_config(REPO / "config" / "paper.yaml")
    plan = plan_study(cfg, model_config=tmp_path, tokens=TOKENS)
    assert plan.attrs["n_params"] == pytest.approx(6.93e9, rel=0.01)
    sf = row(plan, "state_features")
    assert sf["params_touched"] == 4 * 32 * 128 * (4096 + 4096)  # LoRA r=128 on q, k, v, o
    assert sf["feature_dim"] == 8192
    assert 27 < sf["peak_mem_gb"] < 80  # float32 weights (27.7 GB) and a chunk's activations
    assert {"warmup", "state_features", "finetune", "budget_features", "budget_train"} <= set(plan["rule"])
    assert "pretrain" not in set(plan["rule"])  # a local model is not pretrained
    assert (plan.loc[plan["rule"] != "ratio", "hours"] > 0).all()
    text = plan_markdown(plan)
    assert "6.929B parameters" in text and "| validation/swift | ratio" in text


def write_bench(path: Path, seconds: float, rss_mb: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
                    f"{seconds}\t0:00:{int(seconds):02d}\t{rss_mb}\t0\t0\t0\t0\t0\t50\t{seconds}\n")


def test_compare_benchmarks_ratios_and_the_2x_verdict(tmp_path, tiny_plan):
    sf, ft = row(tiny_plan, "state_features"), row(tiny_plan, "finetune")
    per_job_s, mem_mb = sf["seconds"] / sf["jobs"], sf["peak_mem_gb"] * 1e3
    for i in range(2):  # as measured as estimated
        write_bench(tmp_path / f"benchmarks/swift/state_features/shard-{i}.tsv", per_job_s, mem_mb)
    # one finetune job, 5x slower than estimated, at the estimated memory
    write_bench(tmp_path / "benchmarks/validation/finetune/B_seed-0.tsv",
                5 * ft["seconds"] / ft["jobs"], ft["peak_mem_gb"] * 1e3)
    cmp = compare_benchmarks(tiny_plan, tmp_path).set_index("rule")
    assert list(cmp.index) == ["state_features", "finetune"]  # rules without files are left out
    assert cmp.loc["state_features", "jobs"] == 2
    assert cmp.loc["state_features", "time_ratio"] == pytest.approx(1.0, rel=1e-3)
    assert cmp.loc["state_features", "mem_ratio"] == pytest.approx(1.0, rel=1e-3)
    assert bool(cmp.loc["state_features", "within_2x"])
    assert cmp.loc["finetune", "time_ratio"] == pytest.approx(0.2, rel=1e-3)
    assert not bool(cmp.loc["finetune", "within_2x"])
    assert cmp.loc["state_features", "measured_mem_mb"] >= PROCESS_MB


def test_cli_plan_prints_the_table_and_fails_outside_2x(tmp_path, capsys):
    from swift_study.cli import main

    write_bench(tmp_path / "benchmarks/warmup.tsv", 10_000.0, 100_000.0)  # far from any estimate
    code = main(["plan", "--preset", "tiny", "--compare-benchmarks", str(tmp_path)])
    out = capsys.readouterr().out
    assert "| side" in out and "state_features" in out and "| validation/swift | ratio" in out
    assert "estimates against" in out and "outside 2x: warmup" in out
    assert code == 2
    assert main(["plan", "--preset", "tiny"]) == 0
    assert "1e+10 FLOP/s" not in capsys.readouterr().out  # the GPU throughput without a comparison


def test_calibration_measures_this_machine_and_refuses_a_7b_model(tiny_cfg, tmp_path):
    """--calibrate: FLOP/s from timed training steps of the study's own model (more tokens
    per step cost proportionally more time, so the rate stays of one order), and a
    job's start-up seconds from a fresh interpreter; a 7B shape is refused, not built."""
    from swift_study.core.errors import ConfigError
    from swift_study.pipeline.plan_calibrate import measure_flops_per_s, measure_overhead_s

    hf = hf_config(tiny_cfg)
    short = measure_flops_per_s(hf, tokens=16, batch=4, seconds=0.3)
    long = measure_flops_per_s(hf, tokens=64, batch=8, seconds=0.3)
    assert 1e6 < short < 1e13 and 1e6 < long < 1e13
    assert 0.05 < long / short < 50
    assert 0.1 < measure_overhead_s(repeats=1) < 120
    (tmp_path / "config.json").write_text(json.dumps(LLAMA_7B_ZH))
    with pytest.raises(ConfigError, match="too large to time"):
        measure_flops_per_s(hf_config(tiny_cfg, tmp_path), tokens=16)


CPU = Rates(train_flops_per_s=1e9, loop_flops_per_s=1e9, feature_flops_per_s=1e9, adam_feature_flops_per_s=1e8,
            forward_flops_per_s=2e9, decode_step_s=0.01, startup_s={"torch": 2.0, "train": 4.0, "eval": 6.0})


def test_padding_to_the_longest_of_a_batch():
    """A batch is padded to its longest example: E[max] of lengths {1, 3} is 2 for one
    draw, 2.5 for two, and tends to 3; constant lengths never pad."""
    import numpy as np

    v, w = np.array([1.0, 3.0]), np.array([1.0, 1.0])
    assert expected_max(v, w, 1) == pytest.approx(2.0)
    assert expected_max(v, w, 2) == pytest.approx(2.5)
    assert expected_max(v, w, 64) == pytest.approx(3.0)
    assert expected_max(np.array([7.0]), np.array([1.0]), 32) == pytest.approx(7.0)


def test_finetune_estimate_counts_its_evaluation(tiny_cfg):
    """Each retraining job also runs lm-eval on every eval task: more eval examples or
    longer answers (generation steps, capped at max_gen_toks) make it cost more."""
    plan = plan_study(tiny_cfg, tokens=TOKENS, rates=CPU)
    s = tiny_cfg["suite"]
    more_eval = {**tiny_cfg, "suite": {**s, "sizes": {**s["sizes"], "eval": 4 * s["sizes"]["eval"]}}}
    assert row(plan_study(more_eval, tokens=TOKENS, rates=CPU), "finetune")["seconds"] > row(plan, "finetune")["seconds"]
    longer = Tokens(eval=TOKENS.eval + 10, train=TOKENS.train, response=TOKENS.response + 10)
    ft_long = row(plan_study(tiny_cfg, tokens=longer, rates=CPU), "finetune")
    assert ft_long["seconds"] > row(plan, "finetune")["seconds"] and ft_long["flops"] > row(plan, "finetune")["flops"]
    lengths = Lengths.constant(20.0, 30.0, 50.0, ["add"], ["qa"])
    capped, free = lmeval_work(lengths, ["add"], 64, 16, 8), lmeval_work(lengths, ["add"], 64, 16, 128)
    assert capped.decode_steps == 4 * 8 and free.decode_steps == 4 * 51  # 4 batches; the answer and its stop
    assert capped.generated < free.generated


def test_start_up_and_concurrency_are_counted_per_job(tiny_cfg):
    """A job's start-up is paid by every job of a rule (the eval start-up by each retraining),
    and every job's seconds scale with the run's concurrency."""
    from dataclasses import replace

    plan = plan_study(tiny_cfg, tokens=TOKENS, rates=CPU)
    slower = plan_study(tiny_cfg, tokens=TOKENS, rates=replace(CPU, startup_s={**CPU.startup_s, "eval": 16.0}))
    for rule in ("finetune", "budget_train", "evaluate"):
        assert row(slower, rule)["seconds"] - row(plan, rule)["seconds"] == pytest.approx(10.0 * row(plan, rule)["jobs"])
    assert row(slower, "warmup")["seconds"] == pytest.approx(row(plan, "warmup")["seconds"])
    busy = plan_study(tiny_cfg, tokens=TOKENS, rates=CPU.with_concurrency(1.5))
    assert row(busy, "state_features")["seconds"] == pytest.approx(1.5 * row(plan, "state_features")["seconds"])


def test_budget_rules_count_the_pool_in_every_format(tiny_cfg):
    """The pool holds each query in every pool format (plain QA and each study's strategy):
    budget_features takes gradients of all of it and of the target examples, at each state."""
    from swift_study.data.pool import builtin_pool
    from swift_study.pipeline.plan_rules import pool_size

    n_pool, formats = pool_size(tiny_cfg)
    assert n_pool == len(builtin_pool(tiny_cfg)) and formats == ["qa", "cot", "corrupt"]
    plan = plan_study(tiny_cfg, tokens=TOKENS, rates=CPU)
    b = tiny_cfg["budget"]
    targets = b["n_target"] * len(b["targets"])
    bf = row(plan, "budget_features")
    assert bf["flops"] == pytest.approx(6.0 * plan.attrs["n_params"] * TOKENS.train * (n_pool + targets))
    assert row(plan, "budget_train")["jobs"] == 6 + 1 + 1  # one target: 6 selectors at 5%, its task baseline; the whole pool


def test_compare_benchmarks_reads_every_planned_rules_files(tmp_path, tiny_plan):
    """Every planned rule with benchmark files in the run is compared (the glob of each rule)."""
    from swift_study.pipeline.plan_check import BENCHMARK_GLOBS

    planned = [r for r in BENCHMARK_GLOBS if r in set(tiny_plan["rule"])]
    assert {"evaluate", "probe_features", "budget_train", "predictor_scores[pilot]"} <= set(planned)
    for rule in planned:
        path = BENCHMARK_GLOBS[rule].replace("*/*", "x/shard-0").replace("*", "one")
        write_bench(tmp_path / path, 10.0, 500.0)
    cmp = compare_benchmarks(tiny_plan, tmp_path)
    assert list(cmp["rule"]) == planned and (cmp["jobs"] == 1).all()

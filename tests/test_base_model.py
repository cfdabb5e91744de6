"""The shipped base model's contract: the leakage partition, its corpus, checksums, and the
validation recipe that repeats its warm-up, and (one slow test) a continuation stage."""
import json
import random
import shutil
from pathlib import Path

import pytest

from swift_study.data.basecorpus import (DOC_KINDS, CorpusSpec, build_corpus, eval_prompt, pretraining_queries, read_result,
                                    render_doc)
from swift_study.pipeline.checks import verify_model_dir
from swift_study.pipeline.config import merge_config, read_config_file, validate_config
from swift_study.core.errors import DataError, SwiftStudyError
from swift_study.data.formats import response_format
from swift_study.core.manifest import sha256_file, write_manifest
from swift_study.data.partition import PRETRAINING_JSON, QueryPartition, check_no_leakage, run_partition
from swift_study.data.records import record_from_dict
from swift_study.data.suite import build_suite
from swift_study.data.tasks import TASKS, generate_queries

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "swift-base-zh-en"  # the default
SECOND_STAGE = REPO / "models" / "swift-base-zh-en-v2"  # its continuation (base_model.init_from)


def fake_model_dir(tmp_path: Path, partition: QueryPartition) -> Path:
    d = tmp_path / "model"
    d.mkdir()
    (d / PRETRAINING_JSON).write_text(json.dumps({"partition": partition.to_dict(), "command": "make-it"}))
    return d


def test_partition_is_a_fixed_split_of_the_key_space():
    p = QueryPartition(buckets=8, pretrain_buckets=(0, 1, 2))
    keys = [q.key for q in generate_queries("add", "zh", 400, seed=3, difficulty={"small_digits": 2})]
    side = [p.is_pretrain(k) for k in keys]
    assert 0.2 < sum(side) / len(side) < 0.55  # about 3/8 of the space
    assert [p.is_pretrain(k) for k in keys] == side  # no seed, no state
    assert all(p.is_study(k) != p.is_pretrain(k) for k in keys)
    assert QueryPartition.from_dict(json.loads(json.dumps(p.to_dict()))) == p


@pytest.mark.parametrize("seed", [1234, 1, 98765])
def test_runs_never_draw_a_pretraining_query_whatever_the_seed(tmp_path, seed):
    part = QueryPartition()
    d = fake_model_dir(tmp_path, part)
    cfg = merge_config(read_config_file(REPO / "config" / "config.yaml"),
                       {"seed": seed, "model": {"local_dir": str(d)},
                        "suite": {"sizes": {"train": 60, "extra": 60, "probe": 8, "eval": 40, "pretrain": 20}}})
    cfg = validate_config(cfg)
    assert run_partition(cfg) == part
    _, records = build_suite(cfg)
    keys = {r.meta["key"] for r in records}
    assert keys and not any(part.is_pretrain(k) for k in keys)
    # without a partition the same config does draw pretraining-side queries (the check can fail)
    cfg["model"]["local_dir"] = None
    _, unrestricted = build_suite(cfg)
    assert any(part.is_pretrain(r.meta["key"]) for r in unrestricted)


def test_a_user_record_of_a_pretraining_query_stops_the_run_at_start_up(tmp_path):
    part = QueryPartition()
    d = fake_model_dir(tmp_path, part)
    leaked = next(q for q in generate_queries("add", "en", 200, seed=0) if part.is_pretrain(q.key))
    rec = {"id": "u1", "query_id": "u1", "task": "add", "lang": "en", "format": "qa", "prompt": leaked.raw + "\n",
           "response": f"Answer: {leaked.answer}", "answer": leaked.answer, "split": "train",
           "meta": {"key": leaked.key}}
    data = tmp_path / "mine.jsonl"
    data.write_text(json.dumps(rec) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=f"{leaked.key}.*pretrained on"):
        check_no_leakage([record_from_dict(rec, "x")], part, d)
    from swift_study.pipeline.checks import check_leakage
    from swift_study.data.suite import load_user_records

    with pytest.raises(SwiftStudyError, match="'u1'"):
        check_leakage({"model": {"local_dir": str(d)}}, load_user_records([data]))
    rec["meta"] = {}  # without its key a user record cannot be checked: it passes
    check_no_leakage([record_from_dict(rec, "x")], part, d)


def test_corpus_uses_no_instruction_format_and_only_the_pretraining_side():
    part = QueryPartition()
    spec = CorpusSpec(tasks=tuple(TASKS), langs=("zh", "en"), difficulties={t: [{}] for t in TASKS},
                      queries_per_setting=30, kinds={k: 1.0 for k in DOC_KINDS}, seed=5)
    queries = pretraining_queries(spec, part)
    assert queries and all(part.is_pretrain(q.key) for q in queries)
    docs = build_corpus(queries, spec)
    assert len(docs) == 4 * len(queries)
    assert not any("答案：" in d or "Answer:" in d or "Question:" in d or "问题：" in d for d in docs)
    rng = random.Random(0)
    for q in queries[:50]:
        for kind in ("worked", "direct"):
            assert read_result(render_doc(q, kind, rng)) == q.answer
        doc = render_doc(q, "direct", rng)  # the result mode continues the begun result line
        prompt = eval_prompt(q, "result")
        assert doc.startswith(prompt) and read_result(doc[len(prompt):], "result") == q.answer
        assert render_doc(q, "worked", rng).startswith(eval_prompt(q, "worked"))


def test_response_layouts():
    assert response_format("答案：12") == "direct"
    assert response_format("个位：2+9+0=11，写1，进1\n十位：3+0+1=4，写4，进0\n答案：41") == "steps"
    assert response_format("Ones: 5*3+0 = 15, write 5, carry 1\nAnswer: 15") == "steps"
    assert response_format("问题：计算1+2。\n答案：3") == "restate"
    assert response_format("The response is wrong.\nAnswer: 3") == "judge"
    assert response_format("好的。\n答案：3") == "other"
    assert response_format("12") == "no_answer"


def test_checksums_catch_a_corrupted_model_file(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text("{}")
    (d / "model.safetensors").write_bytes(b"x" * 1000)
    write_manifest(d)
    assert verify_model_dir(d)
    (d / "model.safetensors").write_bytes(b"y" * 1000)  # same size, other bytes
    with pytest.raises(DataError, match=r"model.safetensors: checksum mismatch: expected sha256 [0-9a-f]{64}"):
        verify_model_dir(d)
    (d / "model.safetensors").write_bytes(b"x" * 10)  # truncated
    with pytest.raises(DataError, match="git checkout"):
        verify_model_dir(d)
    (d / "model.safetensors").unlink()
    with pytest.raises(DataError, match="missing"):
        verify_model_dir(d)


def test_validation_repeats_the_warmup_by_default():
    study = {"suite": {"tasks": ["add", "sort"]}, "studies": [{"name": "c", "strategy": "cot", "in_task": ["add"]}]}
    cfg = validate_config({**study, "warmup": {"learning_rate": 5e-4, "num_epochs": 3, "batch_size": 8}})
    v = cfg["validation"]
    assert v["start_state"] == "base"
    assert (v["learning_rate"], v["num_epochs"], v["batch_size"]) == (5e-4, 3, 8)
    cfg = validate_config({**study, "validation": {"learning_rate": 1e-3, "start_state": "last"}})
    assert cfg["validation"]["learning_rate"] == 1e-3 and cfg["validation"]["start_state"] == "last"


@pytest.mark.skipif(not SHIPPED.exists(), reason="the shipped base model is not built yet")
def test_shipped_model_is_intact_documented_and_used_by_default(tmp_path):
    assert verify_model_dir(SHIPPED) and verify_model_dir(SECOND_STAGE)
    rec = json.loads((SHIPPED / PRETRAINING_JSON).read_text())
    part = QueryPartition.from_dict(rec["partition"])
    assert rec["query_keys"] and all(part.is_pretrain(k) for k in rec["query_keys"])
    second = json.loads((SECOND_STAGE / PRETRAINING_JSON).read_text())
    assert set(rec["query_keys"]) <= set(second["query_keys"]) and second["init_from"]["name"] == rec["name"]
    assert all(part.is_pretrain(k) for k in second["query_keys"])
    assert second["init_from"]["weights_sha256"] in (SHIPPED / "checksums.sha256").read_text()
    card = (SHIPPED / "README.md").read_text()
    for needle in ("## Rebuild", "snakemake base_model", "## Learning curve", "sha256"):
        assert needle in card
    size = sum(f.stat().st_size for f in SHIPPED.iterdir())
    assert size < 25e6
    cfg = read_config_file(REPO / "config" / "config.yaml")
    assert Path(cfg["model"]["local_dir"]).resolve() == SHIPPED
    # a truncated copy is refused at load time, naming the file
    bad = tmp_path / "bad"
    shutil.copytree(SHIPPED, bad)
    with open(bad / "model.safetensors", "r+b") as fh:
        fh.truncate(1000)
    from swift_study.model.modeling import load_model

    with pytest.raises(DataError, match="model.safetensors: checksum mismatch.*git checkout"):
        load_model(bad)


def test_shipped_cards_are_what_their_records_render(tmp_path):
    """Each shipped card is generated from its pretraining.json and curve.json (no hand
    edits that a rebuild would lose), and says whether the default config loads the model."""
    from swift_study.model.basemodel import render_card, write_card

    for model in (SHIPPED, SECOND_STAGE):
        assert (model / "README.md").read_text(encoding="utf-8") == render_card(model), \
            f"{model.name}: the card differs from its rendering; `swift-study model-card {model}` rewrites it"
    assert "The default config loads it" in render_card(SHIPPED)
    assert "Not the model the default config loads (`models/swift-base-zh-en`)" in render_card(SECOND_STAGE)
    # rewriting a copy's card keeps its manifest valid (and a changed card is caught by it)
    copy = tmp_path / SECOND_STAGE.name
    shutil.copytree(SECOND_STAGE, copy)
    (copy / "README.md").write_text("edited by hand\n", encoding="utf-8")
    with pytest.raises(DataError, match="README.md"):
        verify_model_dir(copy)
    write_card(copy)
    assert verify_model_dir(copy) and (copy / "README.md").read_text(encoding="utf-8") == render_card(copy)
    assert f"local_dir: {copy}}}" in render_card(copy)  # outside the repository: its full path
    (copy / "curve.json").unlink()
    with pytest.raises(DataError, match="curve.json: missing"):
        write_card(copy)


def _tiny_section(out_dir: Path, **over) -> dict:
    section = {
        "name": "tiny-base", "out_dir": str(out_dir), "seed": 3,
        "partition": {"buckets": 8, "pretrain_buckets": [0, 1, 2]},
        "corpus": {"tasks": ["add"], "langs": ["zh"], "queries_per_setting": 16,
                   "kinds": {"worked": 1.0, "direct": 1.0}, "difficulties": {"add": [{"digits": 2}]}},
        "tokenizer": {"vocab_size": 320},
        "arch": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32,
                 "max_position_embeddings": 128},
        "max_length": 96,
        "train": {"learning_rate": 3e-3, "max_steps": 2, "batch_size": 8, "save_steps": 1000},
        "curve": {"points": 1, "per_setting": 2, "max_new_tokens": 8},
    }
    section.update(over)
    return section


@pytest.mark.slow
def test_a_continuation_stage_starts_from_its_parent_and_records_both(tmp_path):
    """base_model.init_from: the second stage loads the parent (checksums verified), keeps
    its tokenizer and shape, lists both stages' query keys and rebuild commands; a parent
    of another partition, or no built model at all, is a config error naming the key."""
    from swift_study.model.basemodel import build_base_model
    from swift_study.core.errors import ConfigError
    from swift_study.model.tokenizer import load_tokenizer

    parent = build_base_model(_tiny_section(tmp_path / "stage1", command="build stage one"),
                              tmp_path / "stage1", tmp_path / "work1", device="cpu")
    child = build_base_model(
        _tiny_section(tmp_path / "stage2", name="tiny-base-2", seed=4, init_from=str(parent),
                      command="build stage two", tokenizer={"vocab_size": 999},
                      corpus={**_tiny_section(tmp_path)["corpus"], "kinds": {"direct": 1.0}}),
        tmp_path / "stage2", tmp_path / "work2", device="cpu")
    assert verify_model_dir(child)
    p_rec = json.loads((parent / PRETRAINING_JSON).read_text())
    c_rec = json.loads((child / PRETRAINING_JSON).read_text())
    assert set(p_rec["query_keys"]) <= set(c_rec["query_keys"])
    assert c_rec["init_from"]["name"] == "tiny-base" and c_rec["init_from"]["dir"] == str(parent)
    assert c_rec["init_from"]["weights_sha256"] == sha256_file(parent / "model.safetensors")
    assert len(load_tokenizer(child)) == len(load_tokenizer(parent))  # the parent's, not a new 999
    card = (child / "README.md").read_text()
    assert card.index("build stage one") < card.index("build stage two") and "continuation stage" in card
    with pytest.raises(ConfigError, match="base_model.partition"):
        build_base_model(_tiny_section(tmp_path / "x", init_from=str(parent),
                                       partition={"buckets": 8, "pretrain_buckets": [5, 6, 7]}),
                         tmp_path / "x", tmp_path / "workx", device="cpu")
    with pytest.raises(ConfigError, match="base_model.init_from"):
        build_base_model(_tiny_section(tmp_path / "y", init_from=str(tmp_path / "work1")),
                         tmp_path / "y", tmp_path / "worky", device="cpu")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()

"""Bad inputs stop early with one clear line naming the file:line or the config key."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from swift_study.pipeline.checks import check_arch, check_device, check_local_model, startup_checks
from swift_study.pipeline.config import validate_config
from swift_study.core.errors import ConfigError, DataError, SwiftStudyError
from swift_study.swift.gradients import FeatureStore, open_features, pairwise_inner
from swift_study.core.offline import offline_env
from swift_study.data.records import read_jsonl
from swift_study.data.suite import build_suite

REPO = Path(__file__).resolve().parents[1]
GOOD = {"id": "u1:qa", "query_id": "u1", "task": "add", "lang": "en", "format": "qa", "prompt": "1+1?\n",
        "response": "Answer: 2", "answer": "2", "split": "eval"}


def _cfg(tiny_config, **suite):
    return validate_config(dict(tiny_config, suite=dict(tiny_config["suite"], **suite)))


def _write(path, lines: list[str] | bytes):
    path.write_bytes(lines if isinstance(lines, bytes) else "".join(l + "\n" for l in lines).encode("utf-8"))
    return path


def test_response_without_final_answer_line(tmp_path):
    bad = _write(tmp_path / "u.jsonl", [json.dumps(GOOD), json.dumps(dict(GOOD, id="u2:qa", response="2"))])
    with pytest.raises(DataError, match=r"u.jsonl:2: response must end with the final-answer line"):
        read_jsonl(bad)


def test_empty_user_file(tmp_path, tiny_config):
    empty = _write(tmp_path / "empty.jsonl", [])
    with pytest.raises(DataError, match=r"empty.jsonl: no records"):
        build_suite(_cfg(tiny_config, user_data=[str(empty)]))


def test_non_utf8_bytes(tmp_path):
    bad = _write(tmp_path / "latin.jsonl", json.dumps(GOOD).encode() + b"\n\xff{}\n")
    with pytest.raises(DataError, match=r"latin.jsonl:2: not UTF-8 \(byte 0xff at column 1\)"):
        read_jsonl(bad)


def _strategy_module(tmp_path, body: str) -> str:
    (tmp_path / "bad_strats.py").write_text(body)
    sys.path.insert(0, str(tmp_path))
    sys.modules.pop("bad_strats", None)
    return "bad_strats:s1"


@pytest.mark.parametrize("body,message", [
    ("def s1(q, rng):\n    return q.raw + '\\n', q.answer\n",
     r"strategy 's1': response for query '.+' must end with the final"),
    ("def s1(q, rng):\n    raise RuntimeError('boom')\n",
     r"strategy 's1' failed on query '.+': RuntimeError: boom"),
])
def test_bad_user_strategy(tmp_path, tiny_config, body, message):
    spec = _strategy_module(tmp_path, body)
    try:
        with pytest.raises(ConfigError, match=message):
            startup_checks(_cfg(tiny_config, strategies={"s1": spec}))
    finally:
        sys.path.remove(str(tmp_path))


def test_more_probes_than_the_pool(tiny_config):
    cfg = validate_config(dict(tiny_config, swift=dict(tiny_config["swift"], n_probes=500)))
    with pytest.raises(ConfigError, match=r"config key swift.n_probes: 500 probes asked but study 'cot' has 12"):
        startup_checks(cfg)


def test_arch_and_device():
    with pytest.raises(ConfigError, match=r"config key model.arch: hidden_size 30 is not a multiple of num_heads 4"):
        check_arch({"hidden_size": 30, "num_heads": 4})
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match=r"config key device: cuda requested but torch.cuda.is_available"):
            check_device("cuda")
    check_device("cpu")


def test_broken_local_model_dirs(tmp_path, tiny_model_dir):
    with pytest.raises(ConfigError, match=r"no such model directory"):
        check_local_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"has no config.json, no weights .*, no tokenizer files"):
        check_local_model(tmp_path / "empty")
    check_local_model(tiny_model_dir)  # a good one passes
    small = tmp_path / "small"
    import shutil

    shutil.copytree(tiny_model_dir, small)
    cfg = json.loads((small / "config.json").read_text())
    cfg["vocab_size"] = 10
    (small / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=r"the tokenizer has \d+ tokens but the model's embedding has 10"):
        check_local_model(small)


def test_missing_model_state_is_never_a_hub_id(tmp_path):
    from swift_study.model.modeling import load_model

    with pytest.raises(DataError, match=r"nope: no such model directory"):
        load_model(tmp_path / "nope")


def test_truncated_model_weights(tmp_path, tiny_model_dir):
    import shutil

    from swift_study.model.modeling import load_model

    d = tmp_path / "m"
    shutil.copytree(tiny_model_dir, d)
    w = d / "model.safetensors"
    w.write_bytes(w.read_bytes()[:50])
    with pytest.raises(DataError, match=r"model.safetensors|m: cannot load the model"):
        load_model(d)


def test_truncated_feature_store(tmp_path):
    path = tmp_path / "eval.npy"
    with FeatureStore(path, n=20, d=8, meta={}) as st:
        st.write(0, np.ones((20, 8), dtype=np.float32))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"eval.npy: truncated or corrupted feature store .*--forcerun state_features"):
        pairwise_inner(np.ones((2, 8)), path)
    path.write_bytes(data[:40])
    with pytest.raises(DataError, match=r"eval.npy: truncated or corrupted feature store"):
        open_features(path)


def test_errors_are_swift_study_errors():
    assert issubclass(ConfigError, SwiftStudyError) and issubclass(DataError, SwiftStudyError)


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = offline_env()
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(REPO / "config" / "tiny.yaml"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def test_bad_user_data_stops_the_workflow_before_any_job(tmp_path):
    bad = _write(tmp_path / "u.jsonl", [json.dumps(dict(GOOD, response="2"))])
    over = tmp_path / "over.yaml"
    over.write_text(f"suite:\n  user_data: ['{bad}']\n")
    proc = _snakemake(tmp_path, "--configfile", str(over), "--cores", "1", "-n")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"{bad}:1: response must end with the final-answer line" in out
    assert not (tmp_path / "results-tiny").exists()


def test_unlock_needs_no_cores(tmp_path):
    proc = _snakemake(tmp_path, "--unlock")
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_max_length_shorter_than_the_examples(tiny_model_dir, tmp_path):
    from swift_study.model.finetune import TrainArgs, check_lengths, train
    from swift_study.model.tokenizer import load_tokenizer

    tok = load_tokenizer(tiny_model_dir)
    examples = [{"prompt": "12加3等于多少？\n", "completion": "答案：15"}] * 3
    check_lengths(tok, examples, 64)  # fits
    with pytest.raises(ConfigError, match=r"config key model.max_length: 4 tokens, but the longest training "
                                          r"example has \d+ \(example 1\) and 3 of 3 would be cut"):
        train(tiny_model_dir, tok, examples, tmp_path / "out", TrainArgs(max_length=4, device="cpu"),
              work_dir=tmp_path / "work")
    assert not (tmp_path / "out").exists()


_TRAIN_SCRIPT = """
import sys, time
from pathlib import Path
from transformers import TrainerCallback
from swift_study.model.finetune import TrainArgs, train
from swift_study.model.tokenizer import load_tokenizer
model_dir, out, work, slow = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4] == "slow"
class Slow(TrainerCallback):  # leaves time to be killed between checkpoints
    def on_step_end(self, args, state, control, **kw):
        time.sleep(0.3 if slow else 0.0)
tok = load_tokenizer(model_dir)
ex = [{"prompt": f"{a}加{b}等于多少？\\n", "completion": f"答案：{a + b}"} for a in range(20) for b in range(8)]
args = TrainArgs(method="full", learning_rate=1e-3, max_steps=16, batch_size=16, max_length=64, seed=0,
                 device="cpu", save_steps=4, export_steps=[6, 12])
train(model_dir, tok, ex, out, args, work_dir=work, callbacks=[Slow()])
"""


def test_sigkill_during_training_then_rerun_equals_uninterrupted(tmp_path, tiny_model_dir):
    """A training process killed with SIGKILL leaves no output; the rerun resumes and
    gives exactly the weights and model states of an uninterrupted run."""
    import signal
    import time

    import torch
    from safetensors.torch import load_file

    script = tmp_path / "train.py"
    script.write_text(_TRAIN_SCRIPT, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(REPO / "workflow"), OMP_NUM_THREADS="1")
    run = lambda out, work, mode: subprocess.Popen(  # noqa: E731
        [sys.executable, str(script), str(tiny_model_dir), str(out), str(work), mode], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ref = run(tmp_path / "ref", tmp_path / "work_ref", "fast")
    assert ref.wait(timeout=300) == 0, ref.stderr.read()
    out, work = tmp_path / "out", tmp_path / "work"
    proc = run(out, work, "slow")
    deadline = time.time() + 240
    while not list(work.glob("checkpoint-8")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert proc.poll() is None, "training ended before it could be killed"
    time.sleep(0.5)  # somewhere between checkpoints 8 and 12
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert not out.exists(), "a killed run left its output directory"
    rerun = run(out, work, "fast")
    assert rerun.wait(timeout=300) == 0, rerun.stderr.read()
    summary = json.loads((out / "train_summary.json").read_text(encoding="utf-8"))
    assert summary["resumed_from"] in ("checkpoint-8", "checkpoint-12") and summary["steps"] == 16
    for sub in ("", "states/step-6", "states/step-12"):
        a, b = load_file(tmp_path / "ref" / sub / "model.safetensors"), load_file(out / sub / "model.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a), f"resumed run differs at {sub or 'the end'}"


@pytest.mark.parametrize("section, value, key", [
    ("validation", {"start_state": "step-9"}, "validation.start_state"),
    ("budget", {"states": ["step-25", "step-7"]}, "budget.states"),
])
def test_unknown_model_state_is_a_config_error(section, value, key):
    """A state name that no warm-up export makes stops at start-up (and in `swift-study check`)."""
    cfg = {"suite": {"tasks": ["add", "sort"]}, "studies": [{"name": "c", "strategy": "cot", "in_task": ["add"]}],
           "warmup": {"export_steps": [25]}, section: value}
    with pytest.raises(ConfigError, match=key):
        validate_config(cfg)
    cfg["warmup"]["method"] = "lora"  # LoRA warm-ups have no base state to take gradients at
    cfg["swift"] = {"gradients": {"subset": "lora"}}
    cfg["budget"] = {"gradients": {"subset": "lora"}, "precondition": "none"}
    if section == "validation":  # but retraining may start from the base model (the warm-up's start)
        cfg[section] = {"start_state": "base"}
        assert validate_config(cfg)["validation"]["start_state"] == "base"
        return
    cfg[section] = {**cfg.get(section, {}), "states": ["base"]}
    with pytest.raises(ConfigError, match=f"{key}: 'base' is not a model state"):
        validate_config(cfg)


# ----------------------------------------------------------------------------- issue 23


def test_vocab_size_without_room_for_merges_names_the_key(tiny_config):
    cfg = validate_config(dict(tiny_config, model=dict(tiny_config["model"], vocab_size=5)))
    with pytest.raises(ConfigError, match=r"config key model.vocab_size: 5 leaves no room for merges"):
        startup_checks(cfg)


def test_user_record_of_an_unknown_task_names_file_line_and_task(tmp_path, tiny_config):
    bad = _write(tmp_path / "u.jsonl", [json.dumps(GOOD), json.dumps(dict(GOOD, id="u2:qa", task="astrology"))])
    with pytest.raises(DataError, match=r"u.jsonl:2: record 'u2:qa' has task 'astrology', which is not in config "
                                        r"key suite.tasks"):
        startup_checks(_cfg(tiny_config, user_data=[str(bad)]))


def test_huge_user_response_names_file_line_and_max_length(tmp_path, tiny_config):
    huge = dict(GOOD, id="u2:qa", response="7" * 5_000_000 + "\nAnswer: 2")
    bad = _write(tmp_path / "u.jsonl", [json.dumps(GOOD), json.dumps(huge)])
    with pytest.raises(DataError, match=r"u.jsonl:2: record 'u2:qa' has 5000\d+ characters, more than config key "
                                        r"model.max_length"):
        startup_checks(_cfg(tiny_config, user_data=[str(bad)]))


def test_a_second_run_is_told_another_run_holds_the_directory(tmp_path):
    from swift_study.core.runlock import BusyError, hold_run_lock

    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from swift_study.core.runlock import hold_run_lock; "
         "hold_run_lock(sys.argv[1], ['snakemake', '--cores', '2']); print('held', flush=True); time.sleep(60)",
         str(tmp_path / ".snakemake")], stdout=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO / "workflow")))
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BusyError, match=rf"another run holds this directory .*pid {holder.pid}, .*snakemake "
                                            r"--cores 2.*do not add --rerun-incomplete"):
            hold_run_lock(tmp_path / ".snakemake")
    finally:
        holder.kill()
        holder.wait()
    hold_run_lock(tmp_path / ".snakemake")  # the kernel dropped the dead holder's lock


def test_second_snakemake_run_names_the_first(tmp_path):
    """Workflow level: a live first run holds the directory; the second stops at start-up."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; from swift_study.core.runlock import hold_run_lock; "
         "hold_run_lock('.snakemake', ['snakemake', '--cores', '2']); print('held', flush=True); time.sleep(120)"],
        cwd=tmp_path, stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(REPO / "workflow")))
    try:
        assert holder.stdout.readline().strip() == "held"
        proc = _snakemake(tmp_path, "--cores", "1", "-n")
    finally:
        holder.kill()
        holder.wait()
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"another run holds this directory" in out and f"pid {holder.pid}" in out
    assert "IncompleteFilesException" not in out and "LockException" not in out


def test_truncated_model_state_names_both_checksums_and_the_rebuild(tmp_path, tiny_model_dir):
    import shutil

    from swift_study.core.manifest import set_producer, write_manifest
    from swift_study.model.modeling import load_model

    d = tmp_path / "states" / "step-3"
    shutil.copytree(tiny_model_dir, d)
    set_producer("warmup", "results-tiny/model/warmup")
    try:
        write_manifest(d)
    finally:
        set_producer(None, None)
    load_model(d)  # intact: loads
    w = d / "model.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(DataError, match=r"step-3/model.safetensors: checksum mismatch: expected sha256 [0-9a-f]{64} "
                                        r"\(\d+ bytes\), found - \(100 bytes\).*snakemake --cores all --forcerun "
                                        r"results-tiny/model/warmup"):
        load_model(d)


def test_truncated_feature_store_fails_its_manifest(tmp_path):
    from swift_study.swift.gradients import check_compatible
    from swift_study.swift.gradients.store import sidecar_path
    from swift_study.core.manifest import write_manifest

    path = tmp_path / "shard-0-of-2" / "eval.npy"
    with FeatureStore(path, n=4, d=8, meta={}) as st:
        st.write(0, np.ones((4, 8), dtype=np.float32))
    write_manifest(path.parent, [path, sidecar_path(path)], rule="state_features", target=str(path))
    assert open_features(path).shape == (4, 8)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, one bit pattern changed: np.load would not notice
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"eval.npy: checksum mismatch.*--forcerun .*eval.npy"):
        open_features(path)
    with pytest.raises(DataError, match=r"eval.npy: checksum mismatch"):
        check_compatible([path, path])


def test_verify_lists_corrupted_and_missing_files_with_their_repair(tmp_path):
    from swift_study.core.manifest import write_manifest
    from swift_study.pipeline.verify import manifest_findings, merge_findings, parse_summary, report, summary_findings

    res = tmp_path / "results-tiny"
    scores = res / "swift" / "scores"
    scores.mkdir(parents=True)
    for name in ("cot.csv", "corrupt.csv"):
        (scores / name).write_text("a,b\n1,2\n")
    write_manifest(scores, [scores / "cot.csv", scores / "corrupt.csv"], rule="score_study",
                   target="results-tiny/swift/scores/cot.csv")
    assert manifest_findings(res) == []
    (scores / "corrupt.csv").unlink()
    (scores / "cot.csv").write_text("a,b\n1,3\n")
    found = manifest_findings(res)
    assert sorted((f.kind, Path(f.path).name) for f in found) == [("corrupted", "cot.csv"), ("missing", "corrupt.csv")]
    summary = ("Building DAG of jobs...\noutput_file\tdate\trule\tlog-file(s)\tstatus\tplan\n"
               "results-tiny/swift/summary.csv\tMon\tswift_summary\t-\tok\tno update\n"
               f"{scores / 'corrupt.csv'}\t-\tscore_study\t-\tmissing\tupdate pending\n"
               "results-tiny/figures/x.png\tMon\tswift_figure\t-\tupdated input files\tupdate pending\n")
    rows = parse_summary(summary)
    assert len(rows) == 3
    merged = merge_findings(found, summary_findings(rows))
    assert [f.kind for f in merged] == ["corrupted", "missing", "stale"]
    text = report(merged, ["--configfile", "config/tiny.yaml"])
    assert "repair: snakemake --cores all --configfile config/tiny.yaml --forcerun " \
           "results-tiny/swift/scores/cot.csv" in text
    assert text.rstrip().endswith("--forcerun results-tiny/swift/scores/cot.csv")
    assert report([], []).startswith("ok:")


def test_no_space_error_names_the_path(tmp_path):
    import errno

    from swift_study.core.atomic import no_space_error

    exc = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.npy"))
    err = no_space_error(exc, [str(tmp_path / "out")])
    assert err is not None and f"no space left on device writing {tmp_path / 'x.npy'}" in str(err)
    assert no_space_error(ValueError("other"), [str(tmp_path)]) is None
    wrapped = RuntimeError("[enforce fail at inline_container.cc] . PytorchStreamWriter failed writing file")
    wrapped.__cause__ = OSError(errno.ENOSPC, "No space left on device")
    assert "no space left on device writing" in str(no_space_error(wrapped, [str(tmp_path / "out")]))

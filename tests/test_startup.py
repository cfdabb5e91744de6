"""Issue 32: what a run checks before it schedules anything.

A broken ``model.local_dir`` (missing, empty, weights and config without a tokenizer) is
named by the model-directory check, before anything loads from it, through Snakemake and
through ``swift-study run``; and every run checks the checksum manifests below its
results folder, so that a damaged artifact stops it where Snakemake alone would say
"Nothing to be done"."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from swift_study.core.errors import ConfigError, DataError
from swift_study.core.offline import offline_env
from swift_study.pipeline.checks import check_local_model, check_user_records, startup_checks
from swift_study.pipeline.config import validate_config

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "config" / "tiny.yaml"
#: a tiny-preset output whose job needs the warm-up's model state (and everything before it)
FEATURES = "results-tiny/swift/features/step-3/shard-0-of-2/eval.npy"
STATE = "results-tiny/model/warmup/states/step-3/model.safetensors"


def _snakemake(workdir: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(TINY), "--cores", "1", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=offline_env(), timeout=timeout)


def _no_traceback(out: str) -> None:
    """Only the workflow's one-line error location, never a Python traceback."""
    assert "Traceback" not in out, out[-3000:]
    frames = [line for line in out.splitlines() if line.strip().startswith('File "')]
    assert all("common.smk" in f for f in frames), frames
    assert "site-packages" not in out and "OSError" not in out and "ValueError" not in out, out[-3000:]


# ----------------------------------------------------------------------------- broken model directories


@pytest.fixture(scope="module")
def broken_dirs(tmp_path_factory, tiny_model_dir) -> dict[str, tuple[Path, str]]:
    """Each broken model directory and what the error must say is missing."""
    root = tmp_path_factory.mktemp("broken_models")
    (root / "empty").mkdir()
    no_tok = root / "no_tokenizer"
    shutil.copytree(tiny_model_dir, no_tok)
    for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json"):
        (no_tok / name).unlink(missing_ok=True)
    assert (no_tok / "config.json").exists() and (no_tok / "model.safetensors").exists()
    return {"missing": (root / "nope", "no such model directory"),
            "empty": (root / "empty", "has no config.json, no weights"),
            "no_tokenizer": (no_tok, "has no tokenizer files (tokenizer.json or tokenizer.model")}


@pytest.mark.parametrize("case", ["missing", "empty", "no_tokenizer"])
def test_broken_model_dir_in_process_before_user_records(case, broken_dirs, tiny_config, tmp_path):
    """The model directory is checked before the user records' tokens are counted with its
    tokenizer (the regression: transformers' OSError or ValueError from check_user_records)."""
    d, missing = broken_dirs[case]
    user = tmp_path / "u.jsonl"
    user.write_text(json.dumps({"id": "u1:qa", "query_id": "u1", "task": "add", "lang": "zh", "format": "qa",
                                "prompt": "1+1?\n", "response": "答案：2", "answer": "2", "split": "eval"}) + "\n",
                    encoding="utf-8")
    cfg = validate_config(dict(tiny_config, model=dict(tiny_config["model"], local_dir=str(d)),
                               suite=dict(tiny_config["suite"], user_data=[str(user)])))
    for check in (startup_checks, check_user_records):
        with pytest.raises(ConfigError, match=rf"config key model.local_dir: {re.escape(str(d))}.*{re.escape(missing)}"):
            check(cfg)
    with pytest.raises(ConfigError) as direct:
        check_local_model(d)
    with pytest.raises(ConfigError) as through_startup:
        startup_checks(cfg)
    assert str(direct.value) == str(through_startup.value)  # what `swift-study check-model` says


def test_a_missing_tokenizer_directory_is_never_a_hub_id(tmp_path):
    from swift_study.model.tokenizer import load_tokenizer

    with pytest.raises(DataError, match=r"nope: no such tokenizer directory"):
        load_tokenizer(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: cannot load the tokenizer \("):
        load_tokenizer(tmp_path / "empty")


@pytest.mark.parametrize("case", ["missing", "empty", "no_tokenizer"])
def test_broken_model_dir_stops_snakemake_and_swift_study_run(case, broken_dirs, tmp_path):
    d, missing = broken_dirs[case]
    check_model = subprocess.run([sys.executable, "-m", "swift_study.cli", "check-model", str(d)],
                                 capture_output=True, text=True, env=offline_env(), timeout=300)
    assert check_model.returncode == 1
    message = check_model.stderr.strip().removeprefix("error: ")
    assert message.startswith(f"config key model.local_dir: {d}") and missing in message, message
    override = f"model={{local_dir: '{d}'}}"
    smk = _snakemake(tmp_path, "-n", "--config", override, timeout=300)
    run = subprocess.run([sys.executable, "-m", "swift_study.cli", "run", "--preset", "tiny", "-n",
                          "--directory", str(tmp_path), "--config", override],
                         capture_output=True, text=True, env=offline_env(), timeout=300)
    for proc in (smk, run):
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0, out[-3000:]
        assert message in out, out[-3000:]  # the same message as check-model
        _no_traceback(out)
    assert not (tmp_path / "results-tiny").exists()


# ----------------------------------------------------------------------------- the results folder at start-up


def test_run_args_read_with_snakemakes_parser():
    from swift_study.pipeline.verify import parse_run_args

    run = parse_run_args(["--cores", "all", "--configfile", "config/tiny.yaml", "--forcerun", "state_features",
                          "results-tiny/model/warmup", "-n", "--config", "model={local_dir: /m d}"])
    assert run.schedules and not run.forceall
    assert run.forced == {"state_features", "results-tiny/model/warmup"}
    assert run.repeat == ("--configfile", "config/tiny.yaml", "--config", "'model={local_dir: /m d}'")
    for no_job in (["--unlock"], ["--summary"], ["--detailed-summary"], ["--list-changes", "code"], ["--dag"],
                   ["--touch"], ["--cleanup-metadata", "x"], ["--lint"]):
        assert not parse_run_args(no_job).schedules, no_job
    assert parse_run_args(["-F"]).forceall
    assert parse_run_args(["--no-such-option", "--cores"]).schedules  # unreadable: a plain run


def test_forcerun_of_the_producer_lets_the_repair_run():
    from swift_study.pipeline.verify import Finding, rebuilt_by

    f = Finding(STATE, "corrupted", "checksum mismatch", "results-tiny/model/warmup", "warmup")
    assert rebuilt_by(f, frozenset({"warmup"})) and rebuilt_by(f, frozenset({"./results-tiny/model/warmup/"}))
    assert rebuilt_by(f, frozenset({os.path.abspath("results-tiny/model/warmup")}))
    assert not rebuilt_by(f, frozenset({"state_features", FEATURES}))


def test_a_deleted_output_is_left_to_snakemake_a_file_deleted_inside_one_is_not(tmp_path, monkeypatch):
    """Deleting an output to have it rebuilt stays possible; a model state's weights deleted
    inside its directory output (which Snakemake cannot see) stop the run."""
    from swift_study.core.manifest import write_manifest
    from swift_study.pipeline.verify import check_results_at_start

    monkeypatch.chdir(tmp_path)
    scores, state = Path("res/scores"), Path("res/model/warmup/states/step-3")
    for d, name in ((scores, "cot.csv"), (state, "model.safetensors")):
        d.mkdir(parents=True)
        (d / name).write_text("x")
    write_manifest(scores, [scores / "cot.csv"], rule="score_study", target=str(scores / "cot.csv"))
    write_manifest(state, rule="warmup", target="res/model/warmup")
    (scores / "cot.csv").unlink()
    assert check_results_at_start({"results": "res"}, [], main=True) >= 0
    (state / "model.safetensors").unlink()
    with pytest.raises(DataError, match=r"(?s)missing: res/model/warmup/states/step-3/model.safetensors.*"
                                        r"--forcerun res/model/warmup"):
        check_results_at_start({"results": "res"}, [], main=True)


def test_switch_is_taken_out_of_the_config_and_jobs_check_nothing(tmp_path, monkeypatch):
    from swift_study.core.manifest import write_manifest
    from swift_study.pipeline.verify import check_results_at_start

    monkeypatch.chdir(tmp_path)  # the run's working directory (its .snakemake/)
    res = tmp_path / "res"
    (res / "scores").mkdir(parents=True)
    (res / "scores" / "a.csv").write_text("a\n1\n")
    write_manifest(res / "scores", [res / "scores" / "a.csv"], rule="score_study", target=str(res / "scores/a.csv"))
    (res / "scores" / "a.csv").write_text("a\n2\n")
    cfg = {"results": str(res), "verify_results": True}
    assert check_results_at_start(dict(cfg), [], main=False) is None  # a job's own process
    assert check_results_at_start(dict(cfg, verify_results=False), [], main=True) is None
    assert check_results_at_start(dict(cfg), ["--summary"], main=True) is None  # swift-study verify's summary
    with pytest.raises(DataError, match=r"(?s)a.csv: checksum mismatch.*repair: snakemake --cores all "
                                        r"--configfile c.yaml --forcerun .*a.csv"):
        check_results_at_start(cfg, ["--configfile", "c.yaml"], main=True)
    assert "verify_results" not in cfg  # not a parameter of any result: never in a rule's params
    assert check_results_at_start(dict(cfg), ["--forcerun", "score_study"], main=True) >= 0


def test_verified_files_are_not_hashed_again_until_they_change(tmp_path, monkeypatch):
    from swift_study.core import manifest
    from swift_study.core.manifest import write_manifest
    from swift_study.pipeline.verify import results_findings

    d = tmp_path / "res" / "m"
    d.mkdir(parents=True)
    (d / "w.bin").write_bytes(b"x" * 1000)
    write_manifest(d, rule="warmup", target="res/m")
    cache = tmp_path / ".snakemake" / "verified.json"
    cache.parent.mkdir()
    monkeypatch.setattr(manifest, "_VERIFIED", set())
    hashed = []
    real = manifest.sha256_file
    monkeypatch.setattr(manifest, "sha256_file", lambda p, *a: hashed.append(Path(p).name) or real(p, *a))
    assert results_findings(tmp_path / "res", cache)[0] == [] and hashed == ["w.bin"]
    monkeypatch.setattr(manifest, "_VERIFIED", set())  # a new run: only the cache remembers
    assert results_findings(tmp_path / "res", cache)[0] == [] and hashed == ["w.bin"]
    (d / "w.bin").write_bytes(b"x" * 10)  # truncated: another size, another mtime
    found, _ = results_findings(tmp_path / "res", cache)
    assert [(f.kind, Path(f.path).name) for f in found] == [("corrupted", "w.bin")]
    cache.write_text("not json")  # a broken cache is no cache
    monkeypatch.setattr(manifest, "_VERIFIED", set())
    assert len(results_findings(tmp_path / "res", cache)[0]) == 1


@pytest.fixture(scope="module")
def tiny_features(tmp_path_factory, tiny_swift_once) -> Path:
    """The tiny preset up to (at least) one shard of gradient features at the warm-up's
    model state: a copy of the session's shared swift target (conftest)."""
    from shared_runs import copy_run

    work = copy_run(tiny_swift_once, tmp_path_factory.mktemp("tiny_features") / "run")
    assert (work / FEATURES).exists()
    return work


@pytest.mark.slow
def test_a_truncated_state_stops_the_forced_and_the_plain_rerun(tiny_features, monkeypatch):
    from swift_study.pipeline.verify import results_findings

    work = tiny_features
    monkeypatch.chdir(work)
    _, seconds = results_findings("results-tiny", work / "timing.json")
    print(f"start-up manifest check of the tiny results folder: {seconds:.3f} s (no cache)")
    assert seconds < 10
    intact = _snakemake(work, "-n", FEATURES)
    assert "Nothing to be done" in intact.stdout + intact.stderr  # intact: the check passes
    w = work / STATE
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    forced = _snakemake(work, FEATURES, "--forcerun", "state_features")
    plain = _snakemake(work, FEATURES)
    for proc in (forced, plain):
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0, out[-3000:]
        assert "Nothing to be done" not in out
        assert f"corrupted: {STATE}: checksum mismatch" in out, out[-3000:]
        assert "--forcerun results-tiny/model/warmup" in out and f"--configfile {TINY}" in out, out[-3000:]
        assert "rule state_features" not in out  # stopped before scheduling: no job started
        _no_traceback(out)
    assert (work / FEATURES).exists()  # nothing was removed or half-written
    repair = _snakemake(work, "-n", FEATURES, "--forcerun", "results-tiny/model/warmup")
    assert repair.returncode == 0, repair.stderr[-3000:]  # the printed repair is not refused
    off = _snakemake(work, "-n", FEATURES, "--config", "verify_results=False")
    assert off.returncode == 0 and "Nothing to be done" in off.stdout + off.stderr  # the switch

"""Issue 32: what a run checks before it schedules anything.

A broken ``model.local_dir`` (missing, empty, weights and config without a tokenizer) is
named by the model-directory check, before anything loads from it, through Snakemake and
through ``swift-study run``."""
import json
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

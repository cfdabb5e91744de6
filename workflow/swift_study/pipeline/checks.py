"""Start-up checks: every input the configuration names, checked before the first job.

:func:`startup_checks` runs when Snakemake builds the DAG (``common.smk``), after the
schema validation of :func:`swift_study.pipeline.config.validate_config`. Each failure is a
:class:`~swift_study.core.errors.SwiftStudyError` whose one-line message names the config
key or ``file:line`` and the reason, so the run stops before it writes anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..core.errors import ConfigError, DataError
from ..data.records import Record

TOKENIZER_FILES: tuple[str, ...] = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")
WEIGHT_FILES: tuple[str, ...] = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                                 "pytorch_model.bin.index.json")


def check_device(device: str) -> None:
    """``device: cuda`` needs a CUDA device."""
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("config key device: cuda requested but torch.cuda.is_available() is False")


def check_arch(arch: Mapping[str, Any]) -> None:
    """The tiny model's shape must be one transformers can build."""
    if int(arch["hidden_size"]) % int(arch["num_heads"]):
        raise ConfigError(f"config key model.arch: hidden_size {arch['hidden_size']} is not a multiple of "
                          f"num_heads {arch['num_heads']}")


def check_local_model(local_dir: str | Path) -> Any:
    """A local model directory has a config, weights and a tokenizer whose vocabulary fits
    the embedding, and its files match its checksums (when it has them); returns its
    tokenizer, loaded only once the files are there and intact."""
    d = Path(local_dir)
    key = "config key model.local_dir"
    if not d.is_dir():
        raise ConfigError(f"{key}: {d}: no such model directory")
    missing = []
    if not (d / "config.json").is_file():
        missing.append("config.json")
    if not any((d / f).is_file() for f in WEIGHT_FILES):
        missing.append("weights (" + " or ".join(WEIGHT_FILES[:3]) + ")")
    if not any((d / f).is_file() for f in TOKENIZER_FILES):
        missing.append("tokenizer files (" + " or ".join(TOKENIZER_FILES) + ")")
    if missing:
        raise ConfigError(f"{key}: {d} has no " + ", no ".join(missing))
    try:
        cfg = json.loads((d / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{key}: {d / 'config.json'}: unreadable ({exc})") from exc
    if not isinstance(cfg, dict):
        raise ConfigError(f"{key}: {d / 'config.json'}: not a JSON object")
    verify_model_dir(d)  # a truncated file is named with its repair, before anything reads it
    from ..model.tokenizer import load_tokenizer

    try:
        tok = load_tokenizer(d)
    except Exception as exc:  # noqa: BLE001 - any loader failure is reported with the directory
        cause = exc.__cause__ or exc  # load_tokenizer's DataError wraps what transformers raised
        first = (str(cause).strip().splitlines() or [""])[0]
        raise ConfigError(f"{key}: {d}: the tokenizer does not load ({type(cause).__name__}: {first})") from exc
    n_embed = cfg.get("vocab_size")
    if n_embed is not None and len(tok) > int(n_embed):
        raise ConfigError(f"{key}: {d}: the tokenizer has {len(tok)} tokens but the model's embedding has "
                          f"{n_embed} (config.json vocab_size)")
    return tok


def verify_model_dir(d: str | Path) -> bool:
    """Verify a model directory (a model, model state or adapter) against its
    ``checksums.sha256``; ``False`` when it has none. The error names the file, both
    checksums and how to restore it: the ``snakemake --forcerun`` of the output the
    manifest names, or for a shipped base model ``git checkout``."""
    from ..core.manifest import read_header, verify_manifest
    from ..data.partition import read_pretraining

    rec = read_pretraining(d)
    if rec is None and read_header(d).get("target"):  # a model the run wrote: rerun its rule
        return verify_manifest(d)
    rec = rec or {}  # a shipped model (or none written by a rule): restore it from git
    fix = f"git checkout -- {d}" + (f"  (or rebuild: {rec['command']})" if rec.get("command") else "")
    return verify_manifest(d, fix)


MAX_CHARS_PER_TOKEN = 32  # no token of the BPE vocabularies trained here spans more characters


def check_vocab_size(cfg: Mapping[str, Any]) -> None:
    """The tokenizer the workflow trains (no ``model.local_dir``) needs room for merges
    beyond its byte alphabet and special tokens, or every example is one token per byte."""
    if cfg["model"].get("local_dir"):
        return
    from ..model.tokenizer import SPECIAL_TOKENS

    floor = 256 + len(SPECIAL_TOKENS)
    n = int(cfg["model"]["vocab_size"])
    if n <= floor:
        raise ConfigError(f"config key model.vocab_size: {n} leaves no room for merges: the byte-level tokenizer "
                          f"already has {floor} entries (256 bytes and {len(SPECIAL_TOKENS)} special tokens); "
                          f"use a few hundred more (tiny preset: 400, default: 1200)")


def check_user_records(cfg: Mapping[str, Any], tok: Any = None) -> None:
    """Every user record names a task of ``suite.tasks`` and fits ``model.max_length``: with
    the local model's tokenizer exactly (``tok``, else loaded through
    :func:`check_local_model`), else by length in characters (a record longer than
    ``max_length`` x :data:`MAX_CHARS_PER_TOKEN` characters cannot fit any tokenizer trained
    here). Errors name ``file:line``, the record and the config key."""
    from ..data.records import iter_jsonl_lines

    tasks = set(cfg["suite"]["tasks"])
    max_length = int(cfg["model"]["max_length"])
    if tok is None and cfg["model"].get("local_dir"):
        tok = check_local_model(cfg["model"]["local_dir"])  # never load from an unchecked directory
    for path in cfg["suite"].get("user_data", []):
        for where, rec in iter_jsonl_lines(path):
            if rec.task not in tasks:
                raise DataError(f"{where}: record {rec.id!r} has task {rec.task!r}, which is not in config key "
                                f"suite.tasks {sorted(tasks)}; add it there to study it as a task of its own, "
                                "or correct the record")
            text = rec.prompt + rec.response
            if tok is not None:
                n = len(tok(text, add_special_tokens=True)["input_ids"]) + 1
                if n > max_length:
                    raise DataError(f"{where}: record {rec.id!r} has {n} tokens (prompt + response + EOS) but "
                                    f"config key model.max_length is {max_length}; shorten it or raise the key")
            elif len(text) > max_length * MAX_CHARS_PER_TOKEN:
                raise DataError(f"{where}: record {rec.id!r} has {len(text)} characters, more than config key "
                                f"model.max_length ({max_length} tokens) x {MAX_CHARS_PER_TOKEN} characters per "
                                "token can hold; shorten it or raise the key")


def check_user_files(cfg: Mapping[str, Any]) -> None:
    """Every file of ``suite.user_data`` is there (before its lines are read)."""
    for path in cfg["suite"].get("user_data", []):
        if not Path(path).is_file():
            shown = path if str(path).isprintable() else repr(path)
            what = "a directory, not a JSONL file" if Path(path).is_dir() else "no such file"
            raise ConfigError(f"config key suite.user_data: {shown}: {what}")


def check_tasks(cfg: Mapping[str, Any], user: Sequence[Record]) -> None:
    """Every name in ``suite.tasks`` is a built-in task or the task of a user record."""
    from ..data.tasks import TASKS

    own = {r.task for r in user}
    for task in cfg["suite"]["tasks"]:
        if task not in TASKS and task not in own:
            raise ConfigError(f"config key suite.tasks: {task!r} is neither a built-in task {sorted(TASKS)} nor the "
                              "task of a record in suite.user_data")


def check_leakage(cfg: Mapping[str, Any], user: Sequence[Record]) -> None:
    """No user record (nor built-in one: the suite draws the runs' side) may hold a query the
    local base model was pretrained on (:mod:`swift_study.data.partition`)."""
    from ..data.partition import check_no_leakage, run_partition

    check_no_leakage(user, run_partition(cfg), cfg["model"]["local_dir"])


def check_user_strategies(cfg: Mapping[str, Any]) -> None:
    """User strategies render one query of every built-in task and language, ending with the answer line."""
    from ..data.formats import format_registry, render
    from ..data.tasks import TASKS, generate_queries

    suite = cfg["suite"]
    registry = format_registry(suite.get("strategies"))
    for name in suite.get("strategies", {}):
        for task in [t for t in suite["tasks"] if t in TASKS]:
            for lang in suite["langs"]:
                q = generate_queries(task, lang, 1, int(cfg["seed"]), (suite.get("difficulty") or {}).get(task))[0]
                render(q, name, registry, int(cfg["seed"]))


def check_probe_pools(cfg: Mapping[str, Any], user: Sequence[Record]) -> None:
    """``swift.n_probes`` fits every study's probe pool (built-in probes plus the ``user`` records)."""
    from ..data.suite import studies_from_config
    from ..data.tasks import TASKS

    suite = cfg["suite"]
    n = int(cfg["swift"]["n_probes"])
    for study in studies_from_config(cfg):
        builtin = 0 if suite.get("replace_builtin") else \
            sum(1 for t in study.in_task if t in TASKS) * len(suite["langs"]) * int(suite["sizes"]["probe"])
        pool = builtin + sum(1 for r in user if r.split == "probe" and r.format == study.strategy
                             and r.task in study.in_task)
        if n > pool:
            raise ConfigError(f"config key swift.n_probes: {n} probes asked but study {study.name!r} has "
                              f"{pool} in its probe pool (suite.sizes.probe x languages x in-task tasks)")


def startup_checks(cfg: Mapping[str, Any]) -> None:
    """Every check above: the configuration's own first (cheap), then the local model
    directory, before anything loads from it (its tokenizer counts the user records'
    tokens), then the user data, strategies and probe pools."""
    from ..data.records import read_jsonl_files

    check_arch(cfg["model"]["arch"])
    check_vocab_size(cfg)
    check_device(cfg["device"])
    from ..predictors.registry import check_answer_predictor

    check_answer_predictor(cfg["swift"]["predictor"], cfg["baselines"]["predictors"])
    local_dir = cfg["model"].get("local_dir")
    tok = check_local_model(local_dir) if local_dir else None
    check_user_files(cfg)
    user = read_jsonl_files(cfg["suite"].get("user_data", []))  # every line of every file validated
    check_user_records(cfg, tok)
    check_tasks(cfg, user)
    check_user_strategies(cfg)
    check_probe_pools(cfg, user)
    if local_dir:
        check_leakage(cfg, user)


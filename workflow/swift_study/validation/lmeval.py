"""Evaluate models with the real lm-evaluation-harness on the study's eval sets.

:func:`write_task_yamls` turns eval JSONL files (see :mod:`swift_study.data.records`) into
local lm-eval tasks, two per eval set ``<name>``:

``<name>_em``   ``generate_until`` on ``prompt`` (greedy, stop at EOS or a blank
                line, ``max_gen_toks``); a ``regex`` filter named ``answer``
                extracts the final answer, ``take_first`` keeps one response, and
                ``exact_match`` compares it with ``answer``.
``<name>_nll``  ``loglikelihood`` of ``response`` given ``prompt`` (no delimiter):
                per-example log-likelihood (``perplexity`` aggregates it as
                ``exp(-mean loglik)``; ``acc`` = greedy decoding reproduces the
                whole response).

Answer extraction (decided here, tested in ``tests/test_lmeval.py``): the filter
takes the text after the FIRST answer marker (``Answer:``/``答案：``) of the
generation, up to the end of that line, stripped. Every reference response
carries exactly one marker, on its last line, so for well-formed outputs
(plain ``Answer: 47`` or CoT steps then ``Answer: 47``) first and last marker are
the same line; an under-trained model that does not emit EOS and runs on into a
new question and answer is scored on the answer it committed to first, not on the
junk after it (:func:`swift_study.data.answers.extract_answer` does the same). A generation without
any marker scores 0 (fallback ``[invalid]``; no first-line guess). Before the
comparison a trailing period (``.``/``。``) and runs of whitespace are dropped on
both sides, as :func:`swift_study.data.answers.normalize_answer` does; case matters.

Generation stops at EOS (which lm-eval adds itself) and at ``"\\n\\n"``: responses
are multi-line (CoT steps) but never contain a blank line.

Per-example loss: lm-eval's stock ``HFLM`` moves the trailing whitespace of the
context into the continuation (our prompts end in ``"\\n"``, so it would score
``"\\n" + response`` given the prompt without its newline). :func:`evaluate` uses
:class:`SwiftHFLM`, an ``HFLM`` whose only change is to split context and
continuation exactly as training does (``tokenize(prompt + response)``, the first
``len(tokenize(prompt))`` tokens are context), so ``loglik`` is minus the summed
training loss of the response tokens (without the EOS target that training adds).
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from ..data.answers import ANSWER_REGEX
from ..core.atomic import atomic_write_text
from ..core.device import resolve_device
from ..core.offline import set_offline

set_offline()

EM_SUFFIX = "_em"
NLL_SUFFIX = "_nll"
FILTER_NAME = "answer"
FALLBACK = "[invalid]"
STOP_SEQUENCES: tuple[str, ...] = ("\n\n",)
#: Applied by ``exact_match`` to prediction and reference alike: drop a trailing
#: period (with surrounding spaces), collapse whitespace runs to their first char.
EM_REGEXES_TO_IGNORE: tuple[str, ...] = (r"\s*[。.]+\s*$", r"(?<=\s)\s+")
_NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")


def task_names_for(name: str) -> list[str]:
    """The lm-eval task names written for eval set ``name``."""
    return [f"{name}{EM_SUFFIX}", f"{name}{NLL_SUFFIX}"]


def split_task_name(task: str) -> tuple[str, str]:
    """``("in_cot", "em")`` for ``"in_cot_em"``; ``(task, "")`` for other names."""
    for suffix in (EM_SUFFIX, NLL_SUFFIX):
        if task.endswith(suffix):
            return task[: -len(suffix)], suffix[1:]
    return task, ""


def _em_task(name: str, data_file: Path, max_gen_toks: int) -> dict[str, Any]:
    return {
        "task": f"{name}{EM_SUFFIX}",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data_file)}},
        "test_split": "test",
        "output_type": "generate_until",
        "doc_to_text": "prompt",
        "doc_to_target": "answer",
        "target_delimiter": "",
        "generation_kwargs": {
            "until": list(STOP_SEQUENCES),
            "do_sample": False,
            "max_gen_toks": int(max_gen_toks),
        },
        "filter_list": [{
            "name": FILTER_NAME,
            "filter": [
                {"function": "regex", "regex_pattern": ANSWER_REGEX, "group_select": 0,
                 "fallback": FALLBACK},
                {"function": "take_first"},
            ],
        }],
        "metric_list": [{
            "metric": "exact_match",
            "aggregation": "mean",
            "higher_is_better": True,
            "ignore_case": False,
            "ignore_punctuation": False,
            "regexes_to_ignore": list(EM_REGEXES_TO_IGNORE),
        }],
        "metadata": {"version": 1.0, "eval_set": name},
    }


def _nll_task(name: str, data_file: Path) -> dict[str, Any]:
    return {
        "task": f"{name}{NLL_SUFFIX}",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data_file)}},
        "test_split": "test",
        "output_type": "loglikelihood",
        "doc_to_text": "prompt",
        "doc_to_target": "response",
        "target_delimiter": "",
        "metric_list": [
            {"metric": "perplexity", "aggregation": "perplexity", "higher_is_better": False},
            {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
        ],
        "metadata": {"version": 1.0, "eval_set": name},
    }


def write_task_yamls(eval_files: Mapping[str, Path], out_dir: Path, max_gen_toks: int) -> list[str]:
    """Write ``<name>_em.yaml`` and ``<name>_nll.yaml`` per eval set into ``out_dir``.

    ``eval_files`` maps an eval-set name (letters, digits, ``_``) to a JSONL file of
    records; data paths are written absolute. Returns the task names, in order.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    for name, path in eval_files.items():
        if not _NAME_RE.match(name):
            raise ValueError(f"eval set name {name!r} must match [A-Za-z0-9_]+")
        data_file = Path(path).resolve()
        if not data_file.is_file():
            raise FileNotFoundError(f"eval file for {name!r} not found: {data_file}")
        for cfg in (_em_task(name, data_file, max_gen_toks), _nll_task(name, data_file)):
            text = "# written by swift_study.validation.lmeval.write_task_yamls\n" + yaml.safe_dump(
                cfg, allow_unicode=True, sort_keys=False, width=1000)
            atomic_write_text(out_dir / f"{cfg['task']}.yaml", text)
            names.append(cfg["task"])
    return names


def task_manager(tasks_dir: Path):
    """An lm-eval ``TaskManager`` over ``tasks_dir`` only (built-in tasks not indexed)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(Path(tasks_dir).resolve()), include_defaults=False)


_SWIFT_HFLM = None


def swift_hflm_class():
    """:class:`SwiftHFLM` (built lazily: importing lm-eval's HF model costs seconds)."""
    global _SWIFT_HFLM
    if _SWIFT_HFLM is None:
        from lm_eval.models.huggingface import HFLM

        class SwiftHFLM(HFLM):
            """``HFLM`` that splits context/continuation as training does.

            Stock ``HFLM`` moves trailing whitespace of the context into the
            continuation; here the context is exactly the prompt.
            """

            def _encode_pair(self, context: str, continuation: str):
                if self.backend != "causal":
                    return super()._encode_pair(context, continuation)
                whole = self.tok_encode(context + continuation)
                ctx = self.tok_encode(context)
                return ctx, whole[len(ctx):]

        _SWIFT_HFLM = SwiftHFLM
    return _SWIFT_HFLM


def count_continuation_tokens(tokenizer, prompt: str, response: str,
                              add_special_tokens: bool | None = None) -> int:
    """Number of continuation tokens :class:`SwiftHFLM` scores for (prompt, response).

    ``add_special_tokens=None`` uses the tokenizer's default, as ``HFLM`` does when
    ``add_bos_token`` is not set.
    """
    kw = {} if add_special_tokens is None else {"add_special_tokens": add_special_tokens}
    whole = tokenizer(prompt + response, **kw)["input_ids"]
    ctx = tokenizer(prompt, **kw)["input_ids"]
    return len(whole) - len(ctx)


def _json_safe(obj: Any) -> Any:
    """Recursively make lm-eval's results JSON-serialisable (NaN -> null)."""
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return _json_safe(obj.item())
        if isinstance(obj, np.ndarray):
            return _json_safe(obj.tolist())
    except ImportError:  # pragma: no cover
        pass
    from lm_eval.utils import handle_non_serializable

    out = handle_non_serializable(obj)
    return out if isinstance(out, (str, int, float, list)) else str(out)


def flatten_samples(samples: Mapping[str, Iterable[Mapping[str, Any]]], tokenizer=None,
                    add_special_tokens: bool | None = None,
                    max_gen_toks: Mapping[str, int] | None = None) -> list[dict[str, Any]]:
    """One row per (eval set, doc) merging its ``_em`` and ``_nll`` samples.

    Fields: ``eval_set``, ``doc_id``, ``id``, ``query_id``, ``task`` (the record's
    suite task, e.g. ``add``), ``lang``, ``format``, ``answer``, ``lm_eval_tasks``;
    from ``_em``: ``em`` (0/1 after the filter), ``filtered_answer``, ``generation``,
    ``gen_tokens`` (tokens of the generation; needs ``tokenizer``) and
    ``truncated`` (the generation used all ``max_gen_toks[task]`` tokens without
    reaching EOS or a stop sequence, so it was cut; needs both);
    from ``_nll``: ``loglik`` (sum over continuation tokens), ``greedy_match``,
    ``n_tokens`` and ``nll_per_token`` (= -loglik / n_tokens; needs ``tokenizer``).
    Fields of a kind that was not evaluated are ``None``.
    """
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for task_name, items in samples.items():
        eval_set, kind = split_task_name(task_name)
        for s in items:
            doc = s.get("doc") or {}
            key = (eval_set, int(s["doc_id"]))
            row = rows.setdefault(key, {
                "eval_set": eval_set, "doc_id": int(s["doc_id"]),
                "id": doc.get("id"), "query_id": doc.get("query_id"), "task": doc.get("task"),
                "lang": doc.get("lang"), "format": doc.get("format"), "answer": doc.get("answer"),
                "lm_eval_tasks": [],
                "em": None, "filtered_answer": None, "generation": None,
                "gen_tokens": None, "truncated": None,
                "loglik": None, "greedy_match": None, "n_tokens": None, "nll_per_token": None,
            })
            row["lm_eval_tasks"].append(task_name)
            if "exact_match" in s:
                resps = s.get("resps") or [[None]]
                gen = resps[0][0] if resps and resps[0] else None
                filt = s.get("filtered_resps") or [None]
                row["em"] = int(round(float(s["exact_match"])))
                row["filtered_answer"] = filt[0] if isinstance(filt, list) else filt
                row["generation"] = gen
                if tokenizer is not None and isinstance(gen, str):
                    row["gen_tokens"] = len(tokenizer(gen, add_special_tokens=False)["input_ids"])
                    limit = (max_gen_toks or {}).get(task_name)
                    if limit:
                        row["truncated"] = int(row["gen_tokens"] >= int(limit))
            if "perplexity" in s:
                ll = float(s["perplexity"])
                row["loglik"] = ll
                if "acc" in s:
                    row["greedy_match"] = int(s["acc"])
                if tokenizer is not None and doc.get("prompt") is not None:
                    n = count_continuation_tokens(tokenizer, doc["prompt"], doc.get("response", ""),
                                                  add_special_tokens)
                    row["n_tokens"] = n
                    row["nll_per_token"] = -ll / n if n > 0 else None
    return [rows[k] for k in sorted(rows)]


def evaluate(model_dir: Path, tasks_dir: Path, task_names: list[str], out_json: Path,
             samples_jsonl: Path, adapter_dir: Path | None = None, batch_size: int = 16,
             device: str = "auto", limit: int | float | None = None, lm=None) -> dict:
    """Run lm-eval on ``task_names`` (from ``tasks_dir``) and write results and samples.

    The model is ``model_dir`` (a local HF directory), with the LoRA adapter
    ``adapter_dir`` on top where given (``peft=``), loaded as :class:`SwiftHFLM`
    (float32 on CPU). ``lm`` may instead be any ``lm_eval.api.model.LM`` (tests).
    Writes lm-eval's results (without the per-sample logs) to ``out_json`` and one
    row per eval example to ``samples_jsonl`` (see :func:`flatten_samples`).
    Returns the results dict written to ``out_json``.
    """
    import lm_eval

    model_dir = Path(model_dir).resolve()
    tm = task_manager(tasks_dir)
    missing = [t for t in task_names if t not in tm.all_tasks]
    if missing:
        raise ValueError(f"lm-eval tasks not found in {tasks_dir}: {missing}")
    dev = resolve_device(device)
    add_special = None
    if lm is None and not model_dir.is_dir():  # a missing local path must never become a hub id
        from ..core.errors import DataError

        raise DataError(f"{model_dir}: no such model directory")
    if lm is None:
        model_args: dict[str, Any] = {
            "pretrained": str(model_dir),
            "device": dev,
            "dtype": "float32" if dev == "cpu" else "auto",
            "batch_size": batch_size,
            "trust_remote_code": False,
        }
        if adapter_dir is not None:
            model_args["peft"] = str(Path(adapter_dir).resolve())
        lm = swift_hflm_class()(**model_args)
    tokenizer = getattr(lm, "tokenizer", None)
    if tokenizer is not None:
        add_special = getattr(lm, "add_bos_token", None)
    else:
        from ..model.tokenizer import load_tokenizer

        tokenizer = load_tokenizer(model_dir)

    results = lm_eval.simple_evaluate(
        model=lm,
        tasks=list(task_names),
        batch_size=batch_size,
        limit=limit,
        log_samples=True,
        task_manager=tm,
        bootstrap_iters=0,
        verbosity="WARNING",
    )
    if results is None:
        raise RuntimeError("lm-eval returned no results (non-zero rank?)")
    samples = results.pop("samples", {})
    limits = {t: int(c.get("generation_kwargs", {}).get("max_gen_toks", 0))
              for t, c in (results.get("configs") or {}).items()
              if isinstance(c, Mapping) and c.get("output_type") == "generate_until"}
    rows = flatten_samples(samples, tokenizer=tokenizer, add_special_tokens=add_special, max_gen_toks=limits)
    out = _json_safe(results)
    out["swift_study"] = {
        "model_dir": str(model_dir),
        "adapter_dir": str(Path(adapter_dir).resolve()) if adapter_dir is not None else None,
        "tasks": list(task_names),
        "n_examples": len(rows),
        "device": dev,
    }
    atomic_write_text(out_json, json.dumps(out, indent=2, ensure_ascii=False, default=str))
    atomic_write_text(samples_jsonl, "".join(
        json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows))
    return out


def evaluate_trained(trained_dir: Path, start_dir: Path, tasks_dir: Path, task_names: list[str],
                     out_json: Path, samples_jsonl: Path, batch_size: int = 16, device: str = "auto") -> dict:
    """:func:`evaluate` a model written by :func:`swift_study.model.finetune.train`: a full model,
    or a LoRA adapter (``adapter_config.json``) on top of ``start_dir``."""
    trained_dir = Path(trained_dir)
    if (trained_dir / "adapter_config.json").exists():
        return evaluate(Path(start_dir), tasks_dir, task_names, out_json, samples_jsonl, adapter_dir=trained_dir,
                        batch_size=batch_size, device=device)
    return evaluate(trained_dir, tasks_dir, task_names, out_json, samples_jsonl, batch_size=batch_size,
                    device=device)


def read_task_names(path: str | os.PathLike) -> list[str]:
    """The lm-eval task names listed one per line in ``path`` (written by the ``lmeval_tasks`` rule)."""
    with open(path, encoding="utf-8") as fh:
        return [line.strip() for line in fh if line.strip()]


def read_samples(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a samples JSONL written by :func:`evaluate`."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def metric(results: Mapping[str, Any], task: str, name: str) -> float | None:
    """A metric of ``results['results'][task]`` by bare name (``exact_match``,
    ``perplexity``, ``acc``), whatever filter suffix lm-eval gave it."""
    res = results.get("results", {}).get(task, {})
    for key, val in res.items():
        if key.split(",")[0] == name and not key.split(",")[0].endswith("_stderr"):
            return val
    return None

"""What each side of the study costs: measured seconds, and floating-point operations.

:func:`cost_table` sums Snakemake's benchmark files per side (swift, validation);
:func:`flop_table` counts the floating-point operations of each side from the study's
shape (model size, examples and their tokens, states, epochs, seeds) and projects
both to a 7B model of the same shape.

FLOP model (the usual dense-transformer estimate, e.g. Kaplan et al. 2020): a
forward pass costs 2 N FLOPs per token and a backward pass 4 N, N = the number of
parameters (attention-score FLOPs are left out: sequences here are short).

* swift side, per model state: one forward+backward per eval example and per probe
  (6 N per token of prompt + target); times the number of states;
* validation side, per retrained model and seed: training, 6 N per token per epoch;
  evaluation, a forward over each prompt and each generated token (2 N per token,
  KV cache) plus the loss of the reference response (2 N per prompt+response token);
* pretraining and the warm-up are shared by both sides and counted in neither.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from ..core.errors import DataError


BENCH_NUMERIC: tuple[str, ...] = (
    "s", "max_rss", "max_vms", "max_uss", "max_pss", "io_in", "io_out", "mean_load", "cpu_time",
)


def _hms_seconds(v: Any) -> float:
    """``"1:02:03"`` or ``"1 day, 1:02:03"`` (Python timedelta text) -> seconds."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return float("nan")
    m = re.fullmatch(r"\s*(?:(\d+)\s+days?,\s*)?(\d+):(\d+):(\d+(?:\.\d*)?)\s*", str(v))
    if not m:
        return float("nan")
    d, h, mi, s = m.groups()
    return float(int(d or 0) * 86400 + int(h) * 3600 + int(mi) * 60 + float(s))


def read_benchmarks(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Read Snakemake benchmark TSV files into one table, one row per benchmark run.

    Columns are read by header name; ``-``, ``NA`` and empty cells are NaN; missing
    columns of :data:`BENCH_NUMERIC` are NaN; ``s`` falls back to ``h:m:s`` where
    missing. Adds ``path`` and ``repeat`` (the row's index within its file; a
    file has several rows when the rule was benchmarked with ``repeat()``).
    """
    frames = []
    for p in paths:
        p = Path(p)
        try:
            df = pd.read_csv(p, sep="\t", na_values=["-", "NA", "nan", ""], keep_default_na=True,
                             dtype=str)
        except pd.errors.EmptyDataError:
            continue
        except OSError as exc:
            raise DataError(f"{p}: cannot read benchmark file: {exc}") from exc
        df.columns = [str(c).strip() for c in df.columns]
        for col in BENCH_NUMERIC:
            df[col] = pd.to_numeric(df[col], errors="coerce") if col in df else np.nan
        if "h:m:s" in df:
            hms = df["h:m:s"].map(_hms_seconds)
            df["s"] = df["s"].where(df["s"].notna(), hms)
        df.insert(0, "repeat", np.arange(len(df)))
        df.insert(0, "path", str(p))
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["path", "repeat", *BENCH_NUMERIC])
    return pd.concat(frames, ignore_index=True)


def cost_table(swift_paths: Iterable[str | Path], validation_paths: Iterable[str | Path]) -> pd.DataFrame:
    """Cost of each side and the speed-up of the swift study.

    Per benchmark file the mean over its repeats (one job's cost); summed per
    side. Rows ``swift``, ``validation``, ``speedup`` (= validation / swift, for
    ``wall_s`` and ``cpu_s`` only); columns ``side``, ``n_jobs``, ``wall_s``,
    ``cpu_s``, ``max_rss_mb`` (largest job). Wall seconds are the GPU-seconds of
    jobs that hold one GPU; CPU seconds are Snakemake's ``cpu_time``.
    """
    out = []
    for side, paths in (("swift", swift_paths), ("validation", validation_paths)):
        b = read_benchmarks(paths)
        if len(b):
            per = b.groupby("path", sort=False)[["s", "cpu_time", "max_rss"]].mean()
            wall = float(per["s"].sum(min_count=1))
            cpu = float(per["cpu_time"].sum(min_count=1))
            rss = float(per["max_rss"].max())
            n = int(len(per))
        else:
            wall = cpu = rss = float("nan")
            n = 0
        out.append(dict(side=side, n_jobs=n, wall_s=wall, cpu_s=cpu, max_rss_mb=rss))

    def ratio(a: float, b: float) -> float:
        return float(a / b) if np.isfinite(a) and np.isfinite(b) and b > 0 else float("nan")

    out.append(dict(side="speedup", n_jobs=np.nan, wall_s=ratio(out[1]["wall_s"], out[0]["wall_s"]),
                    cpu_s=ratio(out[1]["cpu_s"], out[0]["cpu_s"]), max_rss_mb=np.nan))
    return pd.DataFrame(out, columns=["side", "n_jobs", "wall_s", "cpu_s", "max_rss_mb"])


#: parameters of LLaMA-2-7B (Chinese-LLaMA-2-7B has ~6.9e9 with its larger vocabulary)
PARAMS_7B = 6.74e9
#: sustained FLOP/s assumed for the GPU-hour projection: an H100 in bf16 at ~40% MFU
ASSUMED_FLOPS_PER_S = 4.0e14


@dataclass(frozen=True)
class StudyShape:
    """Token counts of one study (what the FLOPs scale with, whatever the model size).

    ``swift_tokens``: prompt + target tokens of every eval example and probe featurized
    at one model state; ``n_states``: model states; ``train_tokens``: tokens of every
    validation model's training set times its epochs, summed over models and seeds;
    ``gen_prompt_tokens``: prompt + generated tokens of every evaluation generation;
    ``loss_tokens``: prompt + response tokens of every loss evaluation.
    """

    swift_tokens: int
    n_states: int
    train_tokens: float
    gen_prompt_tokens: int
    loss_tokens: int


def flop_table(shape: StudyShape, n_params: int, n_params_7b: float = PARAMS_7B,
               flops_per_s: float = ASSUMED_FLOPS_PER_S) -> pd.DataFrame:
    """FLOPs of each side at the study's model size and at 7B, and their ratio.

    Rows ``swift``, ``validation``, ``ratio`` (validation / swift); columns
    ``flops`` (this model), ``flops_7b`` and ``gpu_hours_7b`` (at ``flops_per_s``).
    """
    per_param = {
        "swift": 6.0 * shape.swift_tokens * shape.n_states,
        "validation": 6.0 * shape.train_tokens + 2.0 * (shape.gen_prompt_tokens + shape.loss_tokens),
    }
    rows = [dict(side=side, flops=f * n_params, flops_7b=f * n_params_7b,
                 gpu_hours_7b=f * n_params_7b / flops_per_s / 3600.0, **asdict(shape))
            for side, f in per_param.items()]
    ratio = per_param["validation"] / per_param["swift"] if per_param["swift"] > 0 else float("nan")
    rows.append(dict(side="ratio", flops=ratio, flops_7b=ratio, gpu_hours_7b=ratio, **asdict(shape)))
    return pd.DataFrame(rows)


def saved_model_parameters(model_dir: str | Path) -> int:
    """Parameters of the model saved in ``model_dir`` (built on the meta device: no weights read)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from ..model.modeling import count_parameters

    cfg = AutoConfig.from_pretrained(str(model_dir), local_files_only=True)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    return int(count_parameters(model))

"""The asked strategy's scores on a finished run: its probes' gradient features at every
model state, against the run's stored eval features, scored as ``score_study`` scores a
study (the same per (context, state) table as ``results/swift/scores/<study>.csv``).

The probe features are computed exactly as the ``state_features`` job computes a study's:
the run's gradient arguments and preconditioning, the probes cut into the run's
``swift.shards`` shards (:func:`~swift_study.swift.gradients.shard_bounds`) and each shard
featurized on its own, written to feature stores and read back. With the thread count
that job used (its log records it; :func:`run_threads`) the features, and so the table,
are bit-identical to the workflow's.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..core.errors import ConfigError, DataError
from ..model.states import BASE, ModelState, state_names, state_path

SWIFT_TARGET = "snakemake --cores all swift"


@dataclass(frozen=True)
class RunLayout:
    """Where a finished run keeps what the asked strategy is scored against: the model
    states scored with the run's preconditioning, their directories, the eval features of
    each (its shards, in order), the eval records and the tokenizer."""

    results: Path
    states: list[str]
    state_dirs: list[Path]
    eval_stores: list[list[Path]]
    eval_records: Path
    tokenizer: Path
    n_shards: int


def run_layout(cfg: Mapping[str, Any], results: str | Path) -> RunLayout:
    """The run's layout, or a :class:`DataError` naming what is missing and the target that
    makes it (``snakemake --cores all swift``)."""
    results = Path(results)
    local = cfg["model"]["local_dir"]
    base_dir = Path(local) if local else results / "model" / "base"
    names = state_names(cfg["warmup"]["export_steps"], cfg["warmup"]["method"])
    dirs = [state_path(s, base_dir, results / "model" / "warmup") for s in names]
    missing = [f"{s} ({d})" for s, d in zip(names, dirs) if not d.is_dir()]
    if missing:
        raise DataError(f"{results}: no model state {', '.join(missing)}; run `{SWIFT_TARGET}` first "
                        "(or give the run's --results and --configfile)")
    precondition = cfg["swift"]["precondition"]
    kept = [(s, d) for s, d in zip(names, dirs) if ModelState(d).scored_with(precondition)]
    n = int(cfg["swift"]["shards"])
    stores = [[results / "swift" / "features" / s / f"shard-{i}-of-{n}" / "eval.npy" for i in range(n)]
              for s, _ in kept]
    for (state, _), shards in zip(kept, stores):
        absent = [p for p in shards if not p.is_file()]
        if absent:
            raise _missing_features(results, state, absent[0], n)
    evals = results / "data" / "eval" / "qa.jsonl"
    if not evals.is_file():
        raise DataError(f"{results}: no eval records ({evals}); run `{SWIFT_TARGET}` first")
    tokenizer = Path(local) if local else results / "model" / "tokenizer"
    return RunLayout(results, [s for s, _ in kept], [d for _, d in kept], stores, evals, tokenizer, n)


def _missing_features(results: Path, state: str, path: Path, n: int) -> Exception:
    other = sorted(p.name for p in (results / "swift" / "features" / state).glob("shard-*-of-*")
                   if not p.name.endswith(f"-of-{n}"))
    if other:
        return ConfigError(f"{results}: the eval features of state {state} are in {other}, not in the "
                           f"{n} shard(s) of the config's swift.shards; give the run's --configfile")
    return DataError(f"{results}: no eval features of state {state} ({path}); run `{SWIFT_TARGET}` first")


def run_threads(results: str | Path) -> int | None:
    """The torch threads the run's ``state_features`` job used (its log's start line), or None."""
    log = Path(results) / "logs" / "state_features" / "shard-0.log"
    try:
        with log.open(encoding="utf-8", errors="replace") as fh:
            m = re.search(r"rule state_features starting \(threads=(\d+)\)", fh.readline())
    except OSError:
        return None
    return int(m.group(1)) if m else None


def probe_features(model, tokenizer, pairs: list[tuple[str, str]], args, adam, n_shards: int, folder: Path):
    """The probes' features as ``state_features`` computes them: shard by shard into feature
    stores under ``folder``; returns the stores, in shard order."""
    from ..swift.gradients import featurize, shard_bounds

    stores = []
    for shard in range(n_shards):
        lo, hi = shard_bounds(len(pairs), args, shard, n_shards)
        out = folder / f"probes-shard-{shard}.npy"
        featurize(model, tokenizer, pairs[lo:hi], args, adam=adam, out=out, progress=False)
        stores.append(out)
    return stores


def score_asked(asked, cfg: Mapping[str, Any], layout: RunLayout):
    """The score table (:func:`~swift_study.swift.influence.score_study`) of the asked strategy
    over the run's model states, with the run's gradients, estimator, bootstrap and seed."""
    from ..data.records import read_jsonl
    from ..model.modeling import load_model
    from ..model.tokenizer import load_tokenizer
    from ..swift.features import gradient_args, state_scores
    from ..swift.gradients import concat_features
    from ..swift.influence import ScoreArgs, score_study

    swift = cfg["swift"]
    args = gradient_args(swift["gradients"], cfg["seed"], cfg["device"], cfg["model"]["max_length"])
    tok = load_tokenizer(layout.tokenizer)
    check_lengths(asked, tok, int(cfg["model"]["max_length"]))
    evals = read_jsonl(layout.eval_records)
    pairs = [(r.prompt, r.response) for r in asked.probes]
    states = []
    with tempfile.TemporaryDirectory(prefix="swift-ask-") as tmp:
        for state, sdir, eval_stores in zip(layout.states, layout.state_dirs, layout.eval_stores):
            ms = ModelState(sdir)
            folder = Path(tmp) / state
            folder.mkdir()
            stores = probe_features(load_model(sdir), tok, pairs, args, ms.preconditioner(swift["precondition"]),
                                    layout.n_shards, folder)
            _check_against_run(stores, eval_stores)
            lr = ms.learning_rate(cfg["warmup"]["learning_rate"] if state == BASE else None)
            states.append(state_scores(state, lr, concat_features(stores), eval_stores, asked.probes, evals))
    if not states:
        raise DataError(f"{layout.results}: no model state is scored with swift.precondition="
                        f"{swift['precondition']}")
    boot = swift["bootstrap"]
    return score_study(states, asked.study, ScoreArgs(estimator=swift["estimator"], n_boot=boot["n_boot"],
                                                      confidence=boot["confidence"], seed=cfg["seed"]))


def check_lengths(asked, tokenizer, max_length: int) -> None:
    """Every probe fits ``model.max_length`` (as the run's start-up check asks of user records):
    a longer one would be cut, its gradient that of another example."""
    for r in asked.probes:
        n = len(tokenizer(r.prompt + r.response, add_special_tokens=True)["input_ids"]) + 1
        if n > max_length:
            raise DataError(f"{asked.source}: probe {r.id!r} has {n} tokens (prompt + response + EOS) but the run's "
                            f"model.max_length is {max_length}; shorten it")


def _check_against_run(stores, eval_stores) -> None:
    """The run's eval stores pass their checksums and were made as the probes were (same
    projection, seed, parameters), or stop: the config given is not the run's."""
    from ..swift.gradients import check_compatible

    try:
        check_compatible([*(str(p) for p in eval_stores), *(str(p) for p in stores)])
    except DataError as exc:
        raise DataError(f"{exc} (swift-study ask: give the run's own --configfile)") from None

"""Second-order influence: EK-FAC curvature of a model state, through kronfluence.

The league (``league.ekfac``) scores a preconditioning ``ekfac`` beside ``none`` and
``adam``: for every model state, kronfluence fits the eigenvalue-corrected
Kronecker-factored (EK-FAC) approximation ``H`` of the Gauss-Newton Hessian of the
training loss on D_B's plain QA (the data the model states are tuned on), and gives the
products ``<g(e), (H + lambda I)^-1 g(p)>`` of every probe ``p`` with every eval
example ``e`` and the self-products ``<g, (H + lambda I)^-1 g>`` (Grosse et al. 2023,
"Studying large language model generalization with influence functions").

The gradients are exact per-example gradients (kronfluence's own hooks, no projection)
of the weights of every ``nn.Linear`` of the model (the decoder blocks and the output
head; of the LoRA matrices for an adapter state), of docs/method.md's loss ``l(z)``:
the mean next-token NLL over the response tokens. The estimators then live in the
metric of ``(H + lambda I)^-1``: ``dots`` are the preconditioned products, the norms
their self-products' square roots (so ``cosine`` is the RelatIF-style normalised
influence). The kronfluence arguments are saved by kronfluence beside the factors;
:class:`EKFACArgs` is saved beside the scores (``args.json``).
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..core.errors import ArgumentError

#: name of the preconditioning in the league and in ``league_scores.csv``
EKFAC = "ekfac"


@dataclass(frozen=True)
class EKFACArgs:
    """Arguments of one EK-FAC scoring (saved beside its scores).

    ``damping``: the ``lambda`` added to the eigenvalues, or None for kronfluence's
    heuristic (0.1 x the mean eigenvalue of each module). ``empirical_fisher``: fit the
    curvature with the training labels (deterministic) rather than labels sampled from
    the model (the true Fisher). ``batch_size``: examples per kronfluence batch.
    ``device``: ``auto`` (a GPU where there is one), ``cpu`` or ``cuda``.
    """

    damping: float | None = None
    empirical_fisher: bool = True
    batch_size: int = 64
    max_length: int = 512
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.damping is not None and not self.damping > 0:
            raise ArgumentError(f"EKFACArgs.damping must be > 0 or None, got {self.damping}")
        if self.batch_size < 1 or self.max_length < 2:
            raise ArgumentError("EKFACArgs.batch_size must be >= 1 and max_length >= 2")


def tracked_modules(model) -> list[str]:
    """Names of the ``nn.Linear`` modules EK-FAC covers: the LoRA matrices of a peft
    model, otherwise every linear layer (decoder blocks and output head)."""
    import torch

    from .gradients.params import LORA_NAME_RE  # the LoRA subset's own name rule

    linear = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    lora = [n for n in linear if LORA_NAME_RE.search(n)]
    if lora:
        return lora
    if not linear:
        raise ArgumentError("ekfac: the model has no nn.Linear module to fit curvature on")
    return linear


def _task(modules: Sequence[str]):
    """A kronfluence ``Task`` whose loss is the summed per-example loss ``l(z)``."""
    import torch
    from kronfluence.task import Task

    from ..model.encoding import IGNORE_INDEX, per_example_loss

    class ResponseLossTask(Task):
        def compute_train_loss(self, batch, model, sample: bool = False):
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            labels = batch["labels"]
            if sample:  # the true Fisher: labels drawn from the model at the response positions
                with torch.no_grad():
                    probs = torch.softmax(logits[:, :-1].float(), dim=-1)
                    drawn = torch.multinomial(probs.reshape(-1, probs.size(-1)), 1).view(probs.shape[:2])
                    keep = labels[:, 1:] != IGNORE_INDEX
                    labels = labels.clone()
                    labels[:, 1:] = torch.where(keep, drawn, torch.full_like(drawn, IGNORE_INDEX))
            return per_example_loss(logits, labels).sum()

        def compute_measurement(self, batch, model):
            return self.compute_train_loss(batch, model, sample=False)

        def get_influence_tracked_modules(self):
            return list(modules)

        def get_attention_mask(self, batch):
            return batch["attention_mask"]

    return ResponseLossTask()


class _Encoded:
    """A map-style dataset of encoded ``(prompt, response)`` pairs."""

    def __init__(self, tokenizer, pairs: Sequence[tuple[str, str]], max_length: int):
        from ..model.encoding import encode_pairs

        self.items = encode_pairs(tokenizer, pairs, max_length)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


def _analyzer(model, tokenizer, args: EKFACArgs, work_dir: str | Path, modules: Sequence[str] | None):
    """A kronfluence ``Analyzer`` of a copy of ``model`` writing under ``work_dir``, and the
    encoder of ``(prompt, response)`` pairs into its datasets."""
    import torch
    from kronfluence.analyzer import Analyzer, prepare_model
    from kronfluence.utils.dataset import DataLoaderKwargs

    from ..core.device import resolve_device
    from ..model.encoding import pad_encoded

    pad_id = tokenizer.pad_token_id

    def collate(items):
        b = pad_encoded(items, pad_id)
        return {"input_ids": b.input_ids, "labels": b.labels, "attention_mask": b.attention_mask}

    torch.manual_seed(args.seed)  # the true Fisher samples labels
    task = _task(list(modules) if modules is not None else tracked_modules(model))
    model = prepare_model(copy.deepcopy(model).eval(), task)  # kronfluence wraps modules in place
    analyzer = Analyzer(analysis_name="ekfac", model=model, task=task,
                        cpu=not resolve_device(args.device).startswith("cuda"),
                        disable_tqdm=True, disable_model_save=True, output_dir=str(work_dir))
    analyzer.set_dataloader_kwargs(DataLoaderKwargs(collate_fn=collate, num_workers=0))
    return analyzer, lambda pairs: _Encoded(tokenizer, pairs, args.max_length)


def _fit(analyzer, fit, args: EKFACArgs) -> None:
    """Fit the EK-FAC factors (named ``factors``) on the encoded ``fit`` set."""
    from kronfluence.arguments import FactorArguments

    analyzer.fit_all_factors(factors_name="factors", dataset=fit, per_device_batch_size=args.batch_size,
                             factor_args=FactorArguments(strategy="ekfac",
                                                         use_empirical_fisher=args.empirical_fisher),
                             overwrite_output_dir=True)


def _score_args(args: EKFACArgs):
    from kronfluence.arguments import ScoreArguments

    return ScoreArguments(damping_factor=args.damping)


def _pairwise(analyzer, probes, evals, args: EKFACArgs) -> np.ndarray:
    """``(P, E)`` preconditioned products of the encoded probes with the eval examples."""
    # (H + lambda I)^-1 is symmetric: the probes are the queries (few to precondition),
    # the eval examples the "training" side (their gradients are computed once)
    analyzer.compute_pairwise_scores(scores_name="pairwise", factors_name="factors", query_dataset=probes,
                                     train_dataset=evals, per_device_query_batch_size=len(probes),
                                     per_device_train_batch_size=args.batch_size, score_args=_score_args(args),
                                     overwrite_output_dir=True)
    return analyzer.load_pairwise_scores("pairwise")["all_modules"].double().numpy()


def _self_norms(analyzer, data, name: str, args: EKFACArgs) -> np.ndarray:
    """Square roots of the self-products ``<g, (H + lambda I)^-1 g>`` of the encoded ``data``."""
    analyzer.compute_self_scores(scores_name=name, factors_name="factors", train_dataset=data,
                                 per_device_train_batch_size=args.batch_size, score_args=_score_args(args),
                                 overwrite_output_dir=True)
    self_scores = analyzer.load_self_scores(name)["all_modules"].double().numpy()
    return np.sqrt(np.clip(self_scores, 0.0, None))


def ekfac_products(model, tokenizer, fit_pairs: Sequence[tuple[str, str]],
                   probe_pairs: Sequence[tuple[str, str]], eval_pairs: Sequence[tuple[str, str]],
                   args: EKFACArgs, work_dir: str | Path,
                   modules: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EK-FAC-preconditioned products of one model state.

    Fits the factors on ``fit_pairs``, then returns ``dots`` ``(P, E)`` with
    ``<g(p), (H + lambda I)^-1 g(e)>`` and the square roots of the self-products of the
    probes ``(P,)`` and of the eval examples ``(E,)``, over the weights of ``modules``
    (default :func:`tracked_modules`). kronfluence writes its factors, scores and
    arguments under ``work_dir``.
    """
    if not fit_pairs or not probe_pairs or not eval_pairs:
        raise ArgumentError("ekfac: fit, probe and eval examples must all be non-empty")
    analyzer, encode = _analyzer(model, tokenizer, args, work_dir, modules)
    probes, evals = encode(probe_pairs), encode(eval_pairs)
    _fit(analyzer, encode(fit_pairs), args)
    dots = _pairwise(analyzer, probes, evals, args)
    return dots, _self_norms(analyzer, probes, "self_probes", args), _self_norms(analyzer, evals, "self_eval", args)


def ekfac_study_products(model, tokenizer, fit_pairs: Sequence[tuple[str, str]],
                         studies: Sequence[Sequence[tuple[str, str]]], eval_pairs: Sequence[tuple[str, str]],
                         args: EKFACArgs, work_dir: str | Path, state_id: str,
                         modules: Sequence[str] | None = None,
                         log: Callable[[str], None] | None = None
                         ) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """:func:`ekfac_products` of several studies' probes at one state, reusing what an
    earlier job at the same state computed.

    Returns ``([(dots, probe_norms) of each study], eval_norms)``. Under ``work_dir`` a
    :class:`~swift_study.core.reuse.WorkCache` keyed by the state (``state_id``: its
    :func:`~swift_study.core.reuse.state_digest`), the fit and eval sets, ``args``,
    ``modules`` and kronfluence's version keeps the factors, the eval norms and each
    study's products (named by a digest of its probes): adding a study fits nothing
    and scores only the new study's probes. The studies still to score are scored
    together in one call, in order, so a first run equals :func:`ekfac_products` of the
    concatenated probes.
    """
    from importlib.metadata import version

    from ..core.atomic import atomic_write_text
    from ..core.reuse import WorkCache, digest

    if not fit_pairs or not eval_pairs or not studies or not all(studies):
        raise ArgumentError("ekfac: fit, probe and eval examples must all be non-empty")
    cache = WorkCache(work_dir, {"state": state_id, "fit": digest(list(fit_pairs)),
                                 "eval": digest(list(eval_pairs)), "args": asdict(args),
                                 "modules": list(modules) if modules is not None else None,
                                 "kronfluence": version("kronfluence")}, log=log)
    keys = [f"probes-{digest(list(pairs))[:20]}" for pairs in studies]
    stored = {k: cache.load(k) for k in dict.fromkeys(keys)}  # studies with equal probes share a piece
    todo = [keys.index(k) for k, piece in stored.items() if piece is None]  # in study order
    eval_norms = cache.load("eval_norms")
    if todo or eval_norms is None:
        analyzer, encode = _analyzer(model, tokenizer, args, work_dir, modules)
        evals = encode(eval_pairs)
        fitted = cache.path("factors.ok")
        if not fitted.exists():
            _fit(analyzer, encode(fit_pairs), args)
            atomic_write_text(fitted, "fitted\n")
        elif log:
            log(f"{work_dir}: EK-FAC factors reused")
        if todo:
            probes = encode([p for i in todo for p in studies[i]])
            dots, norms = _pairwise(analyzer, probes, evals, args), _self_norms(analyzer, probes, "self_probes", args)
            start = 0
            for i in todo:
                rows = slice(start, start + len(studies[i]))
                start += len(studies[i])
                stored[keys[i]] = {"dots": dots[rows], "probe_norms": norms[rows]}
                cache.save(keys[i], **stored[keys[i]])
        if eval_norms is None:
            eval_norms = {"norms": _self_norms(analyzer, evals, "self_eval", args)}
            cache.save("eval_norms", **eval_norms)
    if log and len(todo) < len(stored):
        log(f"{work_dir}: products of {len(stored) - len(todo)} of {len(stored)} probe sets reused")
    return [(stored[k]["dots"], stored[k]["probe_norms"]) for k in keys], eval_norms["norms"]


def save_args(path: str | Path, args: EKFACArgs) -> None:
    """Write ``args`` as JSON (beside the scores they produced)."""
    from ..core.atomic import atomic_write_text

    atomic_write_text(Path(path), json.dumps(asdict(args), indent=2, sort_keys=True) + "\n")


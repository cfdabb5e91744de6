"""Influence numbers against an independent implementation: captum's TracInCP.

TracInCP with one checkpoint and learning rate 1 is the plain gradient inner
product <g(train), g(test)> over the chosen layers. captum computes it with its own
per-sample-gradient code (a loop of autograd.grad calls on the per-example losses);
we compute it with our engines (no projection) and compare the whole matrix.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from swift_study.model.encoding import collate, per_example_loss
from swift_study.swift.gradients import GradientArgs, featurize, select_parameters
from swift_study.model.tokenizer import train_tokenizer

from tiny_model import tiny_llama

captum_influence = pytest.importorskip("captum.influence")



def _pairs(n, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.randint(10, 999), rng.randint(10, 999)
        out.append((f"{a}加{b}等于多少？\n" + "请想想。" * rng.randint(0, 2), f"答案：{a + b}"))
    return out


class _Logits(torch.nn.Module):
    """captum calls model(*inputs); our loss needs the logits of a causal LM."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids):
        return self.lm(input_ids=input_ids).logits


def _loss_none(logits, labels):  # reduction "none": one loss per example, as captum requires
    return per_example_loss(logits, labels)


@pytest.mark.parametrize("engine", ["fast", "exact"])
def test_influence_matches_captum_tracincp(tmp_path, engine):
    torch.manual_seed(0)
    probes, evals = _pairs(6, 1), _pairs(5, 2)
    tok = train_tokenizer([p + r for p, r in probes + evals + _pairs(40, 3)], 300, tmp_path / "tok")
    lm = tiny_llama(tok, seed=0).eval()
    with torch.no_grad():
        for p in lm.parameters():
            p.add_(0.02 * torch.randn_like(p))
    wrapped = _Logits(lm)
    ckpt = tmp_path / "ckpt.pt"
    torch.save(wrapped.state_dict(), ckpt)

    args = GradientArgs(engine=engine, subset="all_linear", projection="none", chunk_size=4, device="cpu")
    layers = ["lm." + n.rsplit(".", 1)[0] for n in select_parameters(lm, "all_linear").names]
    g_probe = featurize(lm, tok, probes, args, progress=False).astype(np.float64)
    g_eval = featurize(lm, tok, evals, args, progress=False).astype(np.float64)
    ours = g_probe @ g_eval.T

    pb, eb = collate(tok, probes, 96), collate(tok, evals, 96)
    train_set = torch.utils.data.TensorDataset(pb.input_ids, pb.labels)

    def load(model, path):
        model.load_state_dict(torch.load(path))
        return 1.0  # learning rate of the checkpoint

    tracin = captum_influence.TracInCP(
        wrapped, train_set, checkpoints=[str(ckpt)], checkpoints_load_func=load,
        loss_fn=_loss_none, batch_size=3, sample_wise_grads_per_batch=False, layers=layers,
    )
    theirs = tracin.influence((eb.input_ids, eb.labels), show_progress=False).detach().double().numpy().T
    rel = np.linalg.norm(ours - theirs) / np.linalg.norm(theirs)
    assert rel < 1e-5, rel

"""EK-FAC through kronfluence: the glue computes the products it claims to."""
import json

import numpy as np
import pytest
import torch

from swift_study.swift.ekfac import EKFACArgs, ekfac_products, save_args, tracked_modules
from swift_study.model.encoding import collate
from swift_study.core.errors import ArgumentError
from swift_study.swift.gradients.exact import per_example_grads_exact
from swift_study.model.tokenizer import train_tokenizer

from tiny_model import tiny_llama

FIT = [(f"{a}加{b}等于多少？\n", f"答案：{a + b}") for a in range(12) for b in range(4)]
PROBES = [("3加4等于多少？\n", "答案：7"), ("5加5等于多少？\n", "个位：5+5=10\n答案：10"),
          ("7加1等于多少？\n", "答案：9")]
EVALS = [(f"{a}加{a + 1}等于多少？\n", f"答案：{2 * a + 1}") for a in range(5)]


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    texts = [p + r for p, r in FIT + PROBES]
    return train_tokenizer(texts, 120, tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def model(tok):
    torch.manual_seed(0)
    m = tiny_llama(tok, seed=3)
    with torch.no_grad():  # off the symmetric initialisation, so gradients differ between examples
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m


def _decoder_linears(model):
    return [n for n in tracked_modules(model) if n != "lm_head"]


def test_large_damping_gives_plain_gradient_products(model, tok, tmp_path):
    """(H + lambda I)^-1 -> I / lambda: lambda x the EK-FAC products are the exact
    per-example gradient products of the tracked weights, norms included."""
    lam = 1e6
    mods = _decoder_linears(model)
    dots, pn, en = ekfac_products(model, tok, FIT, PROBES, EVALS, EKFACArgs(damping=lam, batch_size=16),
                                  tmp_path, modules=mods)
    names = [f"{m}.weight" for m in mods]

    def flat(pairs):
        g = per_example_grads_exact(model, collate(tok, pairs, 64), names)
        return torch.cat([g[n].reshape(len(pairs), -1) for n in names], 1).double().numpy()

    gp, ge = flat(PROBES), flat(EVALS)
    exact = gp @ ge.T
    np.testing.assert_allclose(dots * lam, exact, rtol=2e-3, atol=1e-6 * np.abs(exact).max())
    np.testing.assert_allclose(pn * np.sqrt(lam), np.linalg.norm(gp, axis=1), rtol=2e-3)
    np.testing.assert_allclose(en * np.sqrt(lam), np.linalg.norm(ge, axis=1), rtol=2e-3)


def test_curvature_changes_products_and_pairwise_agrees_with_self(model, tok, tmp_path):
    """With the default (heuristic) damping the curvature reweights the products; the
    pairwise products of a set with itself equal its self-products; reruns are equal."""
    args = EKFACArgs(batch_size=16)
    dots, pn, en = ekfac_products(model, tok, FIT, EVALS, EVALS, args, tmp_path / "a")
    np.testing.assert_allclose(np.diag(dots), pn ** 2, rtol=1e-3)
    np.testing.assert_allclose(pn, en, rtol=1e-5)
    again = ekfac_products(model, tok, FIT, EVALS, EVALS, args, tmp_path / "b")[0]
    np.testing.assert_array_equal(dots, again)
    # not a rescaled Euclidean product: the cosines differ from the plain gradients' cosines
    names = [f"{m}.weight" for m in tracked_modules(model) if m != "lm_head"]
    g = per_example_grads_exact(model, collate(tok, EVALS, 64), names)
    flat = torch.cat([g[n].reshape(len(EVALS), -1) for n in names], 1).double().numpy()
    plain = flat @ flat.T / np.outer(np.linalg.norm(flat, axis=1), np.linalg.norm(flat, axis=1))
    assert np.abs(dots / np.outer(pn, en) - plain).max() > 1e-2


def test_args_are_saved_and_checked(tmp_path):
    save_args(tmp_path / "args.json", EKFACArgs(damping=0.5))
    assert json.loads((tmp_path / "args.json").read_text())["damping"] == 0.5
    with pytest.raises(ArgumentError):
        EKFACArgs(damping=0.0)


def test_study_products_reuse_the_fit_and_score_only_a_new_study(model, tok, tmp_path):
    """The per-study form equals the one-call products on the concatenated probes (first
    run, bit for bit); a rerun with one more study fits nothing, keeps the stored pieces
    and scores only the new study's probes, as the one-call products do."""
    from swift_study.swift.ekfac import ekfac_study_products

    args = EKFACArgs(batch_size=16)
    one, two = PROBES[:2], PROBES[2:]
    dots, pn, en = ekfac_products(model, tok, FIT, one + two, EVALS, args, tmp_path / "ref")
    said: list[str] = []
    work = tmp_path / "work"
    got, got_en = ekfac_study_products(model, tok, FIT, [one, two], EVALS, args, work, "state-a", log=said.append)
    np.testing.assert_array_equal(np.vstack([d for d, _ in got]), dots)
    np.testing.assert_array_equal(np.concatenate([n for _, n in got]), pn)
    np.testing.assert_array_equal(got_en, en)
    fitted = (work / "factors.ok").stat().st_mtime_ns
    three = [PROBES[2], PROBES[0]]  # a new probe set (another order): its own piece
    again, again_en = ekfac_study_products(model, tok, FIT, [one, two, three], EVALS, args, work, "state-a",
                                           log=said.append)
    assert (work / "factors.ok").stat().st_mtime_ns == fitted
    assert any("factors reused" in s for s in said) and any("2 of 3 probe sets reused" in s for s in said)
    for (d0, n0), (d1, n1) in zip(got, again):  # the earlier studies' pieces, as stored
        np.testing.assert_array_equal(d0, d1)
        np.testing.assert_array_equal(n0, n1)
    np.testing.assert_array_equal(again_en, en)
    np.testing.assert_allclose(again[2][0], dots[[2, 0]], rtol=1e-5, atol=1e-9 * np.abs(dots).max())
    np.testing.assert_allclose(again[2][1], pn[[2, 0]], rtol=1e-5)

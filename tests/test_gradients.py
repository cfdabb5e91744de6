"""Per-example gradient engines, projectors, Adam preconditioning and feature stores."""

from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest
import torch

from swift_study.model.encoding import collate
from swift_study.swift.gradients import (
    AdamState, FeatureStore, GradientArgs, IdentityProjector, KronProjector, MixedProjector,
    SketchProjector,
    adam_precondition, feature_dim, feature_norms, featurize, open_features, pairwise_inner,
    per_example_features_fast, per_example_grads_exact, per_example_grads_loop, read_meta,
    select_parameters,
)
from swift_study.model.tokenizer import train_tokenizer

from tiny_model import tiny_llama

TOL = 1e-5


def _pairs(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.randint(1, 999), rng.randint(1, 999)
        filler = " please" * rng.randint(0, 4)
        prompt = f"Q: what is {a} plus {b}?{filler} 答："
        steps = "".join(f" {rng.randint(0, 9)}+{rng.randint(0, 9)}" for _ in range(rng.randint(0, 3)))
        out.append((prompt, f"{steps} = {a + b}"))
    return out


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and 2 OpenMP threads on a busy 2-core
    machine slow small ops down by 5x or more."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tok(tmp_path_factory):
    texts = [p + r for p, r in _pairs(60, 123)] + ["问题 答案 加 减 乘 比较 排序"] * 3
    return train_tokenizer(texts, 300, tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="session")
def model(tok):
    m = tiny_llama(tok, seed=0)
    # Break the symmetric init a little so gradients are generic.
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return m.eval()


@pytest.fixture(scope="session")
def batch(tok):
    b = collate(tok, _pairs(10, 7), 128)
    lengths = b.attention_mask.sum(1)
    assert lengths.min() < lengths.max(), "pairs must differ in length so padding is exercised"
    return b


@pytest.fixture(scope="session")
def lora_model(tok):
    peft = pytest.importorskip("peft")
    base = tiny_llama(tok, seed=1)
    torch.manual_seed(0)
    m = peft.get_peft_model(base, peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                                  target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():  # B starts at zero: perturb it so that A gets gradient too
        for n, p in m.named_parameters():
            if "lora_B" in n:
                p.copy_(0.1 * torch.randn_like(p))
    return m.eval()


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def _flat(grads, names):
    return torch.cat([grads[n].reshape(grads[n].shape[0], -1) for n in names], 1)


def _assert_rows_close(a: torch.Tensor, b: torch.Tensor, tol: float = TOL):
    assert a.shape == b.shape
    for i in range(a.shape[0]):
        assert b[i].norm() > 0, f"example {i} has zero reference gradient"
        assert _rel(a[i], b[i]) < tol, f"example {i}: relative error {_rel(a[i], b[i]):.2e}"


# ----------------------------------------------------------------------------- subsets

def test_subsets_select_expected_parameters(model, lora_model):
    all_lin = select_parameters(model, "all_linear")
    assert len(all_lin.names) == 2 * 7 and all(n.endswith(".weight") for n in all_lin.names)
    assert not any("embed" in n or "norm" in n for n in all_lin.names)
    last = select_parameters(model, "last_layers", last_n_layers=1)
    assert len(last.names) == 7 and all(".layers.1." in n for n in last.names)
    assert select_parameters(model, "last_layers", last_n_layers=5).names == all_lin.names
    mods = select_parameters(model, "modules", modules=[r"layers\.0\.mlp", "embed_tokens"])
    assert "model.embed_tokens.weight" in mods.names and len(mods.names) == 4
    assert mods.fast_supported and len(mods.embeddings) == 1
    assert {s.module_name for s in mods.linears} >= {"lm_head"}  # the tied head is hooked too
    both = select_parameters(model, "linear_embed")
    assert both.names == ["model.embed_tokens.weight"] + all_lin.names
    norms = select_parameters(model, "modules", modules=["norm"])
    assert not norms.fast_supported
    with pytest.raises(ValueError, match="engine='exact'"):
        norms.require_fast()
    lora = select_parameters(lora_model, "lora")
    assert len(lora.names) == 2 * 2 * 2 and lora.fast_supported
    with pytest.raises(ValueError, match="no LoRA"):
        select_parameters(model, "lora")
    with pytest.raises(ValueError, match="selected no parameters"):
        select_parameters(model, "modules", modules=["nothing_matches_this"])


# ----------------------------------------------------------------------------- engines agree

@pytest.mark.parametrize("subset", ["all_linear", "last_layers"])
def test_exact_and_fast_match_loop(model, batch, subset):
    sub = select_parameters(model, subset)
    loop = _flat(per_example_grads_loop(model, batch, sub.names), sub.names)
    exact = _flat(per_example_grads_exact(model, batch, sub.names), sub.names)
    _assert_rows_close(exact, loop)
    ident = IdentityProjector(sub.shapes)
    fast = per_example_features_fast(model, batch, sub, ident)
    _assert_rows_close(fast, loop)
    full_logits = per_example_features_fast(model, batch, sub, ident, response_logits_only=False)
    _assert_rows_close(full_logits, loop)


def test_lora_engines_match_loop(lora_model, batch):
    sub = select_parameters(lora_model, "lora")
    loop = per_example_grads_loop(lora_model, batch, sub.names)
    for n in sub.names:  # both A and B must carry signal
        assert loop[n].norm() > 0, n
    loop_f = _flat(loop, sub.names)
    exact = _flat(per_example_grads_exact(lora_model, batch, sub.names), sub.names)
    _assert_rows_close(exact, loop_f)
    fast = per_example_features_fast(lora_model, batch, sub, IdentityProjector(sub.shapes))
    _assert_rows_close(fast, loop_f)
    # requires_grad flags survive the engines
    assert all(p.requires_grad == ("lora_" in n) for n, p in lora_model.named_parameters())


def test_exact_handles_tied_embedding(model, batch):
    sub = select_parameters(model, "modules", modules=["embed_tokens", r"layers\.1\.post_attention"])
    loop = _flat(per_example_grads_loop(model, batch, sub.names), sub.names)
    exact = _flat(per_example_grads_exact(model, batch, sub.names), sub.names)
    _assert_rows_close(exact, loop)
    with pytest.raises(ValueError, match="engine='exact'"):
        featurize(model, None, [("a", "b")], GradientArgs(subset="modules", modules=["norm"]))


@pytest.mark.parametrize("response_logits_only", [True, False])
def test_fast_handles_tied_embedding_and_head(model, batch, response_logits_only):
    sub = select_parameters(model, "linear_embed")
    assert batch.input_ids.eq(model.config.pad_token_id).any()  # padding ids present
    loop = per_example_grads_loop(model, batch, sub.names)
    ident = IdentityProjector(sub.shapes)
    fast = per_example_features_fast(model, batch, sub, ident,
                                     response_logits_only=response_logits_only)
    _assert_rows_close(fast, _flat(loop, sub.names))
    kp = KronProjector(sub.shapes, k=16, seed=4)
    _assert_rows_close(per_example_features_fast(model, batch, sub, kp,
                                                 response_logits_only=response_logits_only),
                       kp.project(loop))


def test_fast_supports_linear_bias(tok, batch):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(3)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=4, intermediate_size=64,
                      attention_bias=True, mlp_bias=True, tie_word_embeddings=True,
                      pad_token_id=tok.pad_token_id, attn_implementation="eager")
    m = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for n, p in m.named_parameters():
            if n.endswith("bias"):
                p.normal_(0, 0.1)
    sub = select_parameters(m, "all_linear")
    assert any(n.endswith(".bias") for n in sub.names)
    loop = per_example_grads_loop(m, batch, sub.names)
    fast = per_example_features_fast(m, batch, sub, IdentityProjector(sub.shapes))
    _assert_rows_close(fast, _flat(loop, sub.names))
    kp = KronProjector(sub.shapes, k=8, seed=1)
    _assert_rows_close(per_example_features_fast(m, batch, sub, kp), kp.project(loop))


def test_padding_gets_zero_output_gradient_and_batching_is_exact(model, tok, batch):
    sub = select_parameters(model, "last_layers")
    # o_proj's input already depends on q/k/v (the engine's graph roots), so its
    # output requires grad when this hook (registered before the engine's) runs.
    spec = next(s for s in sub.linears if s.module_name.endswith("o_proj"))
    seen = []

    def hook(mod, args, out):
        out.register_hook(lambda g: seen.append(g.detach().clone()))
    h = spec.module.register_forward_hook(hook)
    try:
        per_example_features_fast(model, batch, sub, IdentityProjector(sub.shapes))
    finally:
        h.remove()
    dy = seen[0]
    pad = batch.attention_mask == 0
    assert pad.any() and dy[pad].abs().max() == 0
    # The same example alone (no padding) gives the same features as inside the batch.
    kp = KronProjector(sub.shapes, k=4, seed=3)
    together = per_example_features_fast(model, batch, sub, kp)
    pairs = _pairs(10, 7)
    alone = torch.cat([per_example_features_fast(model, collate(tok, [p], 128), sub, kp)
                       for p in pairs[:3]])
    _assert_rows_close(together[:3], alone)


def test_fast_kron_equals_projected_exact(model, batch):
    sub = select_parameters(model, "all_linear")
    kp = KronProjector(sub.shapes, k=16, seed=5)
    exact = per_example_grads_exact(model, batch, sub.names)
    ref = kp.project(exact)
    assert ref.shape == (batch.input_ids.shape[0], 2 * (5 * 16 * 16 + 2 * 16 * 16))
    _assert_rows_close(per_example_features_fast(model, batch, sub, kp), ref)
    sk = SketchProjector(sub.shapes, dim=64, seed=5)
    _assert_rows_close(per_example_features_fast(model, batch, sub, sk), sk.project(exact))


def test_fast_mixed_equals_projected_exact_with_tied_embedding(model, batch):
    # the default projection: CountSketch of the (tied) embedding, Kronecker elsewhere
    sub = select_parameters(model, "linear_embed")
    emb = [e.weight for e in sub.embeddings]
    assert emb, "the subset should hold the embedding"
    mp = MixedProjector(sub.shapes, emb, k=8, dim=128, seed=4)
    assert mp.route(emb[0])[0] == "sketch" and mp.dim == 128
    exact = per_example_grads_exact(model, batch, sub.names)
    ref = mp.project(exact)
    assert ref.shape == (batch.input_ids.shape[0], 128)
    _assert_rows_close(per_example_features_fast(model, batch, sub, mp), ref)
    # = one CountSketch of the embedding gradients and the linears' Kronecker blocks
    blocks = {n: mp.kron.block(n, exact[n]) for n in mp.kron.names}
    _assert_rows_close(ref, mp.sketch.project({**{n: exact[n] for n in emb}, **blocks}))


def test_shifted_sketch_is_unbiased_and_wraps_around():
    torch.manual_seed(1)
    g, h = torch.randn(1, 40, 30), torch.randn(1, 40, 30)
    h = 0.5 * g + h
    exact = float((g * h).sum())
    est = []
    for s in range(300):
        sk = SketchProjector({"w": (40, 30)}, dim=64, seed=s)
        est.append(float(sk.project({"w": g}) @ sk.project({"w": h}).T))
    assert abs(np.mean(est) - exact) < 4 * np.std(est) / np.sqrt(len(est))
    # by hand: coordinate j, signed, lands in bucket (offset + j) mod dim (1200 coordinates
    # wrap around 64 buckets many times); signs are +-1 and differ between parameters
    sk = SketchProjector({"w": (40, 30), "v": (40, 30)}, dim=64, seed=0)
    signs, off = sk.signs("w"), sk.offsets["w"]
    ref = torch.zeros(64)
    ref.index_add_(0, (torch.arange(1200) + off) % 64, g.reshape(-1) * signs)
    assert torch.allclose(sk.project({"w": g, "v": torch.zeros_like(g)})[0], ref, atol=1e-5)
    assert set(signs.tolist()) == {-1.0, 1.0} and not torch.equal(signs, sk.signs("v"))


def test_featurize_engines_agree(model, tok):
    pairs = _pairs(7, 11)
    base = dict(subset="all_linear", projection="kron", proj_factor_dim=8, seed=2,
                chunk_size=3, device="cpu")
    fast = featurize(model, tok, pairs, GradientArgs(engine="fast", **base), progress=False)
    exact = featurize(model, tok, pairs, GradientArgs(engine="exact", **base), progress=False)
    loop = featurize(model, tok, pairs, GradientArgs(engine="loop", **base), progress=False)
    assert fast.shape == (7, feature_dim(model, GradientArgs(**base))) and fast.dtype == np.float32
    _assert_rows_close(torch.from_numpy(fast), torch.from_numpy(loop))
    _assert_rows_close(torch.from_numpy(exact), torch.from_numpy(loop))
    again = featurize(model, tok, pairs, GradientArgs(engine="fast", **base), progress=False)
    assert np.array_equal(fast, again)


def test_length_sorting_changes_nothing_but_speed(model, tok):
    from swift_study.swift.gradients.engine import _batches

    pairs = _pairs(13, 21)
    args = GradientArgs(chunk_size=4, proj_factor_dim=8, device="cpu")
    seen = []
    for idx, b in _batches(tok, pairs, args):
        ref = collate(tok, [pairs[i] for i in idx], args.max_length)
        assert torch.equal(b.input_ids, ref.input_ids) and torch.equal(b.labels, ref.labels)
        assert torch.equal(b.attention_mask, ref.attention_mask)
        seen += idx.tolist()
    assert sorted(seen) == list(range(13)) and seen != list(range(13))
    unsorted = GradientArgs(chunk_size=4, proj_factor_dim=8, device="cpu", sort_by_length=False)
    _assert_rows_close(torch.from_numpy(featurize(model, tok, pairs, args, progress=False)),
                       torch.from_numpy(featurize(model, tok, pairs, unsorted, progress=False)))


def test_bfloat16_autocast_runs_and_stays_close(model, tok):
    pairs = _pairs(6, 8)
    kw = dict(subset="linear_embed", proj_factor_dim=8, device="cpu")
    f32 = featurize(model, tok, pairs, GradientArgs(**kw), progress=False)
    bf16 = featurize(model, tok, pairs, GradientArgs(dtype="bfloat16", **kw), progress=False)
    assert bf16.dtype == np.float32 and np.isfinite(bf16).all()
    assert _rel(torch.from_numpy(bf16), torch.from_numpy(f32)) < 0.1


def test_fast_engine_works_with_sdpa(tok, batch):
    m = tiny_llama(tok, seed=4).eval()
    sub = select_parameters(m, "all_linear")
    kp = KronProjector(sub.shapes, k=8, seed=0)
    eager = per_example_features_fast(m, batch, sub, kp)
    m.set_attn_implementation("sdpa")
    _assert_rows_close(per_example_features_fast(m, batch, sub, kp), eager, 1e-4)
    # the exact engine switches to eager for the call and back afterwards
    exact = kp.project(per_example_grads_exact(m, batch, sub.names))
    _assert_rows_close(exact, eager)
    assert m.config._attn_implementation == "sdpa"


# ----------------------------------------------------------------------------- projections

def test_kron_projection_preserves_inner_products(model, tok):
    pairs = _pairs(24, 99)
    sub = select_parameters(model, "all_linear")
    grads = per_example_grads_exact(model, collate(tok, pairs, 128), sub.names)
    full = _flat(grads, sub.names).double()
    kp = KronProjector(sub.shapes, k=16, seed=0)
    proj = kp.project(grads).double()
    iu = torch.triu_indices(24, 24, 1)
    exact_dots = (full @ full.T)[iu[0], iu[1]]
    proj_dots = (proj @ proj.T)[iu[0], iu[1]]
    r = np.corrcoef(exact_dots.numpy(), proj_dots.numpy())[0, 1]
    assert r > 0.9, r
    sk = SketchProjector(sub.shapes, dim=2048, seed=0).project(grads).double()
    r_sk = np.corrcoef(exact_dots.numpy(), (sk @ sk.T)[iu[0], iu[1]].numpy())[0, 1]
    assert r_sk > 0.9, r_sk
    # same seed -> identical, other seed -> different
    assert torch.equal(KronProjector(sub.shapes, k=16, seed=0).project(grads), kp.project(grads))
    other = KronProjector(sub.shapes, k=16, seed=1).project(grads)
    assert _rel(other, kp.project(grads)) > 0.1


def test_kron_projection_is_unbiased_on_average():
    torch.manual_seed(0)
    g, h = torch.randn(1, 40, 30), torch.randn(1, 40, 30)
    h = 0.6 * g + 0.8 * h
    exact = float((g * h).sum())
    est = [float(KronProjector({"w": (40, 30)}, k=8, seed=s).project({"w": g})
                 @ KronProjector({"w": (40, 30)}, k=8, seed=s).project({"w": h}).T)
           for s in range(300)]
    assert abs(np.mean(est) - exact) < 4 * np.std(est) / np.sqrt(len(est))
    # a side no longer than k is left unprojected, so k >= both sides is exact
    big = KronProjector({"w": (40, 30)}, k=64, seed=0)
    assert big.dim == 1200 and torch.allclose(big.project({"w": g}), g.reshape(1, -1))


# ----------------------------------------------------------------------------- Adam

def test_adam_precondition_matches_hand_computation():
    g = torch.tensor([[0.5, -1.0], [2.0, 0.0]])          # two examples, a 2-vector param
    m, v = torch.tensor([0.1, 0.2]), torch.tensor([0.01, 0.04])
    b1, b2, eps, step = 0.9, 0.99, 1e-8, 3
    out = adam_precondition({"w": g}, {"w": (m, v)}, step, (b1, b2), eps)["w"]
    t = step + 1
    for i in range(2):
        for j in range(2):
            mm = b1 * m[j].item() + (1 - b1) * g[i, j].item()
            vv = b2 * v[j].item() + (1 - b2) * g[i, j].item() ** 2
            want = (mm / (1 - b1 ** t)) / (np.sqrt(vv / (1 - b2 ** t)) + eps)
            assert abs(out[i, j].item() - want) < 1e-6 * max(1.0, abs(want))
    with pytest.raises(ValueError, match="no optimizer moments"):
        adam_precondition({"x": g}, {"w": (m, v)}, 0)


def test_adam_state_from_a_live_optimizer_predicts_its_next_step():
    """AdamState.from_optimizer reads the live moments (the same reader as the exported
    model states): preconditioning the next gradient gives the direction Adam takes."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2, bias=False)
    opt = torch.optim.Adam(lin.parameters(), lr=0.1, betas=(0.8, 0.95), eps=1e-6)
    x = torch.randn(5, 3)
    for _ in range(3):
        opt.zero_grad()
        lin(x).pow(2).sum().backward()
        opt.step()
    state = AdamState.from_optimizer(opt, lin)
    assert state.step == 3 and state.betas == (0.8, 0.95) and state.eps == 1e-6
    opt.zero_grad()
    lin(x).pow(2).sum().backward()
    direction = state({"weight": lin.weight.grad.unsqueeze(0)})["weight"][0]
    before = lin.weight.detach().clone()
    opt.step()
    torch.testing.assert_close(before - lin.weight.detach(), 0.1 * direction, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("subset", ["last_layers", "linear_embed"])
def test_adam_featurize_fast_equals_exact(model, tok, subset):
    sub = select_parameters(model, subset)
    torch.manual_seed(1)
    moments = {n: (0.01 * torch.randn_like(p), 1e-4 * torch.rand_like(p))
               for n, p in model.named_parameters() if n in sub.names}
    adam = AdamState(moments, step=10, betas=(0.9, 0.999), eps=1e-8)
    pairs = _pairs(5, 3)
    kw = dict(subset=subset, proj_factor_dim=8, chunk_size=5, device="cpu")
    fast = featurize(model, tok, pairs, GradientArgs(engine="fast", **kw), adam=adam,
                     progress=False)
    exact = featurize(model, tok, pairs, GradientArgs(engine="exact", **kw),
                      adam=dict(moments=moments, step=10), progress=False)
    _assert_rows_close(torch.from_numpy(fast), torch.from_numpy(exact), 1e-4)
    plain = featurize(model, tok, pairs, GradientArgs(engine="fast", **kw), progress=False)
    assert _rel(torch.from_numpy(plain), torch.from_numpy(fast)) > 0.5


# ----------------------------------------------------------------------------- stores

def test_feature_store_streaming_equals_in_memory(model, tok, tmp_path):
    pairs = _pairs(11, 5)
    args = GradientArgs(chunk_size=4, proj_factor_dim=4, device="cpu", seed=9)
    mem = featurize(model, tok, pairs, args, progress=False)
    path = tmp_path / "eval_feats.npy"
    disk = featurize(model, tok, pairs, args, out=path, progress=False)
    assert np.array_equal(np.asarray(disk), mem) and np.array_equal(open_features(path), mem)
    meta = read_meta(path)
    assert meta["n"] == 11 and meta["d"] == mem.shape[1] and meta["args"]["seed"] == 9
    assert meta["names"] == select_parameters(model, args.subset).names
    assert json.loads((tmp_path / "eval_feats.json").read_text())["d"] == mem.shape[1]
    assert not [p for p in os.listdir(tmp_path) if "tmp" in p]

    probes = featurize(model, tok, _pairs(3, 6), args, progress=False)
    dots, norms = pairwise_inner(probes, path, chunk=4)
    want = probes.astype(np.float64) @ mem.astype(np.float64).T
    assert dots.dtype == np.float64 and np.allclose(dots, want, rtol=1e-12, atol=1e-12)
    assert np.allclose(norms, np.linalg.norm(mem.astype(np.float64), axis=1))
    assert np.allclose(feature_norms(probes), np.linalg.norm(probes.astype(np.float64), axis=1))
    dots2, _ = pairwise_inner(probes, mem, chunk=3)
    assert np.allclose(dots2, want)



def test_projection_ensemble_averages_the_members_scores(model, tok, tmp_path):
    """swift.gradients.seeds: the ensemble's inner products are the mean of its members'
    (each a single projection seeded by seed + entry), in memory and in a store, and a
    store of another ensemble is refused as incompatible."""
    from swift_study.core.errors import ArgumentError
    from swift_study.swift.gradients import check_compatible

    pairs, probes = _pairs(9, 5), _pairs(3, 6)
    kw = dict(chunk_size=4, proj_factor_dim=4, proj_dim=64, device="cpu")
    ens = GradientArgs(seed=5, seeds=[0, 3], **kw)
    e_eval = featurize(model, tok, pairs, ens, out=tmp_path / "ens.npy", progress=False)
    e_probe = featurize(model, tok, probes, ens, progress=False)
    assert e_eval.shape == (9, 2 * 64) and read_meta(tmp_path / "ens.npy")["projector"]["members"] == [5, 8]
    members = [(featurize(model, tok, probes, GradientArgs(seed=s, **kw), progress=False),
                featurize(model, tok, pairs, GradientArgs(seed=s, **kw), progress=False)) for s in (5, 8)]
    want = np.mean([p.astype(np.float64) @ e.astype(np.float64).T for p, e in members], axis=0)
    dots, norms = pairwise_inner(e_probe, tmp_path / "ens.npy")
    assert np.allclose(dots, want, rtol=1e-5, atol=1e-6 * np.abs(want).max())
    assert np.allclose(norms ** 2, np.mean([(e.astype(np.float64) ** 2).sum(1) for _, e in members], axis=0),
                       rtol=1e-5)
    assert not np.allclose(members[0][0], members[1][0])  # the members are different projections
    featurize(model, tok, pairs, GradientArgs(seed=5, seeds=[0, 4], **kw), out=tmp_path / "other.npy",
              progress=False)
    with pytest.raises(Exception, match="another projector"):
        check_compatible([tmp_path / "ens.npy", tmp_path / "other.npy"])
    with pytest.raises(ArgumentError, match="seeds"):
        GradientArgs(seeds=[1, 1])

def test_feature_store_is_atomic(tmp_path):
    path = tmp_path / "f.npy"
    with pytest.raises(RuntimeError):
        with FeatureStore(path, 4, 3) as st:
            st.append(np.ones((2, 3)))
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match="wrote 2 of 4"):
        st = FeatureStore(path, 4, 3)
        st.append(np.ones((2, 3)))
        st.close()
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- arguments

@pytest.mark.parametrize("field,value", [
    ("engine", "vmap"), ("subset", "everything"), ("projection", "gaussian"),
    ("proj_factor_dim", 0), ("proj_dim", -1), ("chunk_size", 0), ("dtype", "float16"),
    ("device", "tpu"), ("last_n_layers", 0), ("max_length", 1), ("seed", -1),
    ("chunk_size", 2.5), ("modules", "q_proj"), ("sort_by_length", "yes"),
])
def test_bad_gradient_args_raise_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        GradientArgs(**{field: value})


def test_gradient_args_modules_and_mapping():
    with pytest.raises(ValueError, match="modules"):
        GradientArgs(subset="modules")
    with pytest.raises(ValueError, match="unknown field"):
        GradientArgs.from_mapping({"engine": "fast", "bogus": 1})
    a = GradientArgs.from_mapping({"engine": "exact", "modules": []}, seed=3)
    assert a.engine == "exact" and a.seed == 3


def test_shards_concatenate_to_the_unsharded_features_bit_for_bit(model, tok, tmp_path):
    from swift_study.swift.gradients import (check_compatible, concat_features, pairwise_inner_shards,
                                       shard_bounds)
    from swift_study.swift.gradients.engine import SORT_WINDOW_CHUNKS

    args = GradientArgs(chunk_size=2, proj_factor_dim=4, proj_dim=64, device="cpu")
    window = 2 * SORT_WINDOW_CHUNKS
    pairs = _pairs(3 * window + 5, 31)  # 4 windows, the last one short
    whole = featurize(model, tok, pairs, args, out=tmp_path / "whole.npy", progress=False)
    for n_shards in (1, 2, 3, 6):
        bounds = [shard_bounds(len(pairs), args, i, n_shards) for i in range(n_shards)]
        assert bounds[0][0] == 0 and bounds[-1][1] == len(pairs)
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))  # contiguous, in order
        assert all(lo % window == 0 for lo, hi in bounds if hi > lo)  # whole windows
        paths = []
        for i, (lo, hi) in enumerate(bounds):
            paths.append(tmp_path / f"s{n_shards}-{i}.npy")
            featurize(model, tok, pairs[lo:hi], args, out=paths[-1], progress=False)
        check_compatible([tmp_path / "whole.npy", *paths])
        assert np.array_equal(concat_features(paths), whole), n_shards
        dots, norms = pairwise_inner_shards(np.asarray(whole[:3]), paths)
        ref_dots, ref_norms = pairwise_inner(np.asarray(whole[:3]), tmp_path / "whole.npy")
        assert np.array_equal(dots, ref_dots) and np.array_equal(norms, ref_norms)


def test_scoring_refuses_features_made_differently(model, tok, tmp_path):
    from swift_study.core.errors import DataError
    from swift_study.swift.gradients import check_compatible

    pairs = _pairs(4, 5)
    base = dict(proj_factor_dim=4, proj_dim=64, device="cpu")
    featurize(model, tok, pairs, GradientArgs(**base), out=tmp_path / "a.npy", progress=False)
    featurize(model, tok, pairs, GradientArgs(**base, engine="exact"), out=tmp_path / "b.npy",
              progress=False)
    check_compatible([tmp_path / "a.npy", tmp_path / "b.npy"])  # engines agree: fine
    featurize(model, tok, pairs, GradientArgs(**{**base, "seed": 9}), out=tmp_path / "c.npy",
              progress=False)
    with pytest.raises(DataError, match=r"c.npy: features made with another projector .*--forcerun"):
        check_compatible([tmp_path / "a.npy", tmp_path / "c.npy"])


def test_embedding_rows_sketch_like_the_dense_gradient():
    """Sketching an embedding's looked-up rows equals sketching its dense per-example
    gradient (repeated ids, a wrap-around of the buckets, a non-contiguous target)."""
    sk = SketchProjector({"emb": (30, 5)}, dim=16, seed=3)
    gen = torch.Generator().manual_seed(0)
    rows = torch.tensor([[1, 4, 4, 0], [7, 29, 2, 2]])
    vals = torch.randn(2, 4, 5, generator=gen)
    dense = torch.zeros(2, 30, 5)
    for b in range(2):
        dense[b].index_add_(0, rows[b], vals[b])
    ref = sk.project({"emb": dense})
    out = torch.zeros(2, 16)
    sk.add_rows_into(out, "emb", rows, vals)
    _assert_rows_close(out, ref)
    wide = torch.zeros(2, 20)
    sk.add_rows_into(wide[:, 2:18], "emb", rows, vals)
    _assert_rows_close(wide[:, 2:18], ref)
    assert not wide[:, :2].any() and not wide[:, 18:].any()


def test_hash_factor_is_a_sparse_unbiased_matrix():
    from swift_study.swift.gradients.projection import HashFactor, reduce_by

    gen = torch.Generator().manual_seed(2)
    sign = torch.randint(0, 2, (13,), generator=gen).float() * 2 - 1
    f = HashFactor(sign, 4)                                   # 13 rows: the last group is padded
    p = f.dense()
    assert p.shape == (13, 4) and torch.equal((p != 0).sum(1), torch.ones(13, dtype=torch.long))
    assert torch.equal(p.abs().sum(0), torch.tensor([4.0, 3.0, 3.0, 3.0]))
    t = torch.randn(2, 5, 13, generator=gen)
    assert torch.allclose(reduce_by(t, f), t @ p, atol=1e-6)
    # the Kronecker block of a hashed projector is P_out^T G P_in with those matrices
    kp = KronProjector({"w": (13, 9)}, k=4, seed=1, kind="hash")
    g = torch.randn(3, 13, 9, generator=gen)
    p_out, p_in = kp.factors("w")
    assert torch.allclose(kp.block("w", g), p_out.dense().t() @ g @ p_in.dense(), atol=1e-5)

"""``repsim``: representation similarity RDS+ (Ivison et al., arXiv 2503.01807).

``h(z) = sum_i w_i h_i / sum_i w_i`` over the token positions ``i = 1..n`` of ``z``'s
full text as the model reads it in training (prompt, response and the EOS the
encoding appends; a probe's full response, an eval example's prompt and answer line),
``h_i`` the last layer's hidden state (``hidden_states[-1]``, after the final norm in
Llama), ``w_i = i``. The pair score is ``cos(h(p), h(e))``: stored as the dot product
and the two norms, scored with the ``cosine`` estimator.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


@torch.no_grad()
def rds_embeddings(model: torch.nn.Module, tokenizer, pairs: Sequence[tuple[str, str]], max_length: int,
                   batch_size: int = 64, device: str = "cpu") -> np.ndarray:
    """RDS+ embeddings ``(n, hidden)`` float64 of ``(prompt, response)`` pairs: the
    position-weighted mean (``w_i = i``, padding excluded) of the last hidden states."""
    from ..model.encoding import collate

    model.eval().to(device)
    out = np.zeros((len(pairs), model.config.hidden_size), dtype=np.float64)
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
    for a in range(0, len(order), batch_size):
        idx = order[a:a + batch_size]
        batch = collate(tokenizer, [pairs[i] for i in idx], max_length).to(device)
        hidden = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                       output_hidden_states=True).hidden_states[-1].double()
        mask = batch.attention_mask.double()
        w = torch.cumsum(mask, dim=1) * mask  # 1..n on real tokens (right padding), 0 on padding
        out[idx] = ((hidden * w.unsqueeze(-1)).sum(1) / w.sum(1, keepdim=True).clamp_min(1)).cpu().numpy()
    return out


def similarity_products(probe_emb: np.ndarray, eval_emb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(dots (P, E), probe norms, eval norms)``: the ``cosine`` estimator turns them into
    ``cos(h(p), h(e))``."""
    p = np.asarray(probe_emb, dtype=np.float64)
    e = np.asarray(eval_emb, dtype=np.float64)
    return p @ e.T, np.linalg.norm(p, axis=1), np.linalg.norm(e, axis=1)

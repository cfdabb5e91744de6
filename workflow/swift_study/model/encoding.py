"""Turn prompt/response records into token ids with the prompt masked.

This reproduces what trl's ``SFTTrainer`` does for ``{"prompt", "completion"}``
data, so the swift study's loss is exactly the training loss: the text
``prompt + response`` is tokenized as one string, the first ``len(tokenize(prompt))``
tokens are masked (label ``-100``) and EOS is appended as a target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

IGNORE_INDEX = -100


@dataclass
class EncodedBatch:
    """A right-padded batch. ``labels`` is ``-100`` on prompt and padding tokens."""

    input_ids: torch.Tensor       # (B, T) long
    labels: torch.Tensor          # (B, T) long, already aligned with input_ids (not shifted)
    attention_mask: torch.Tensor  # (B, T) long, 1 on real tokens

    def to(self, device: torch.device | str) -> "EncodedBatch":
        """Move all tensors to ``device``."""
        return EncodedBatch(self.input_ids.to(device), self.labels.to(device),
                            self.attention_mask.to(device))


def encode_pair(tokenizer, prompt: str, response: str, max_length: int) -> tuple[list[int], list[int]]:
    """Token ids and labels of one example (prompt masked, EOS appended, truncated).

    Truncation keeps the left part, as trl does; an example whose response is cut
    away entirely keeps at least its EOS target.
    """
    return encode_pairs(tokenizer, [(prompt, response)], max_length)[0]


def encode_pairs(tokenizer, pairs: Sequence[tuple[str, str]], max_length: int
                 ) -> list[tuple[list[int], list[int]]]:
    """:func:`encode_pair` of every pair, with one batched tokenizer call for the
    prompts and one for the full texts (a fast tokenizer encodes a list in one go)."""
    if not pairs:
        return []
    prompts = tokenizer([p for p, _ in pairs], add_special_tokens=False)["input_ids"]
    fulls = tokenizer([p + r for p, r in pairs], add_special_tokens=False)["input_ids"]
    return [_labelled(tokenizer, len(pr), full, max_length) for pr, full in zip(prompts, fulls)]


def _labelled(tokenizer, n_prompt: int, ids: Sequence[int], max_length: int
              ) -> tuple[list[int], list[int]]:
    ids = list(ids) + [tokenizer.eos_token_id]
    labels = [IGNORE_INDEX] * n_prompt + ids[n_prompt:]
    if len(ids) > max_length:
        ids, labels = ids[:max_length], labels[:max_length]
        if all(l == IGNORE_INDEX for l in labels):
            ids[-1] = labels[-1] = tokenizer.eos_token_id
    return ids, labels


def pad_encoded(encoded: Sequence[tuple[list[int], list[int]]], pad_id: int) -> EncodedBatch:
    """Right-pad already encoded ``(ids, labels)`` examples into one batch."""
    width = max(len(ids) for ids, _ in encoded)
    input_ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    labels = torch.full((len(encoded), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for i, (ids, lab) in enumerate(encoded):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(lab)] = torch.tensor(lab)
        mask[i, : len(ids)] = 1
    return EncodedBatch(input_ids, labels, mask)


def collate(tokenizer, pairs: Sequence[tuple[str, str]], max_length: int) -> EncodedBatch:
    """Encode and right-pad a list of ``(prompt, response)`` pairs."""
    return pad_encoded(encode_pairs(tokenizer, pairs, max_length), tokenizer.pad_token_id)


def per_example_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token NLL over each example's response tokens, shape ``(B,)``.

    ``logits`` is ``(B, T, V)``; ``labels`` is ``(B, T)`` unshifted with ``-100``
    where no loss is taken. This is docs/method.md's ``l(z; theta)``.
    """
    shift_logits = logits[:, :-1, :].float()
    shift_labels = labels[:, 1:]
    mask = shift_labels != IGNORE_INDEX
    safe = shift_labels.clamp_min(0)
    logp = torch.log_softmax(shift_logits, dim=-1)
    nll = -logp.gather(-1, safe.unsqueeze(-1)).squeeze(-1) * mask
    return nll.sum(-1) / mask.sum(-1).clamp_min(1)

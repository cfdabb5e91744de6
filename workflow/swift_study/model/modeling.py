"""Build, save and load the ``LlamaForCausalLM`` models the study runs on."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedModel


def build_tiny_llama(arch: Mapping[str, Any], tokenizer, seed: int) -> LlamaForCausalLM:
    """A freshly initialised small Llama (Chinese-LLaMA-2 architecture, tiny sizes).

    ``arch`` holds ``hidden_size``, ``num_layers``, ``num_heads``,
    ``intermediate_size``, ``max_position_embeddings`` (config ``model.arch``).
    """
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=int(arch["hidden_size"]),
        num_hidden_layers=int(arch["num_layers"]),
        num_attention_heads=int(arch["num_heads"]),
        num_key_value_heads=int(arch["num_heads"]),
        intermediate_size=int(arch["intermediate_size"]),
        max_position_embeddings=int(arch["max_position_embeddings"]),
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        attn_implementation="eager",
    )
    return LlamaForCausalLM(cfg)


def load_model(path: str | Path, device: str | torch.device = "cpu",
               dtype: torch.dtype = torch.float32, attn: str = "eager", merge: bool = False) -> PreTrainedModel:
    """Load a local causal LM directory offline (never touches a hub).

    ``attn="eager"`` is what ``torch.func.vmap`` needs (sdpa has no batching rule). A LoRA
    adapter directory (a LoRA model state) is loaded on its base model
    (``adapter_base.json``) as a peft model, its LoRA weights separate (for gradients
    over them), or merged into the base with ``merge=True`` (to train from it).
    """
    from .states import adapter_base_dir

    from ..pipeline.checks import verify_model_dir

    if (Path(path) / "adapter_config.json").exists():
        from peft import PeftModel

        from ..core.errors import DataError

        verify_model_dir(path)  # the adapter's checksums (its base is verified when loaded)

        base = adapter_base_dir(path)
        if base is None:
            raise DataError(f"{path}: LoRA adapter without adapter_base.json naming its base model")
        model = PeftModel.from_pretrained(load_model(base, device, dtype, attn), str(path))
        if not merge:
            return model.to(device)
        merged = model.merge_and_unload()
        for p in merged.parameters():  # peft froze the base weights; a merged model is a plain model
            p.requires_grad_(True)
        return merged.to(device)
    from transformers import AutoModelForCausalLM

    from ..core.errors import DataError

    path = Path(path)
    if not path.is_dir():  # never let transformers read a missing local path as a hub id
        raise DataError(f"{path}: no such model directory")
    verify_model_dir(path)  # its checksums: every trained model and state has them
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(path), local_files_only=True, dtype=dtype, attn_implementation=attn,
        )
    except Exception as exc:  # noqa: BLE001 - e.g. SafetensorError on a truncated file: name the path
        raise DataError(f"{path}: cannot load the model ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                        "force-rerun the rule that wrote it (snakemake --forcerun <rule>; `swift-study verify` names it)") from exc
    return model.to(device)


def count_parameters(model: torch.nn.Module) -> int:
    """Number of distinct parameters (tied weights counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


@torch.no_grad()
def mean_pooled_embeddings(model: torch.nn.Module, tokenizer, pairs: list[tuple[str, str]], max_length: int,
                           batch_size: int = 64, device: str = "cpu", progress: bool = True) -> np.ndarray:
    """LTD-style example embeddings: the last hidden state averaged over the tokens of
    ``prompt + response`` (padding excluded), ``(n, hidden)`` float32."""
    from tqdm.auto import tqdm

    from .encoding import collate

    model.eval().to(device)
    out = np.zeros((len(pairs), model.config.hidden_size), dtype=np.float32)
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
    for a in tqdm(range(0, len(order), batch_size), desc="embeddings", disable=not progress, leave=False):
        idx = order[a:a + batch_size]
        batch = collate(tokenizer, [pairs[i] for i in idx], max_length).to(device)
        hidden = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                       output_hidden_states=True).hidden_states[-1].float()
        mask = batch.attention_mask.unsqueeze(-1).float()
        out[idx] = ((hidden * mask).sum(1) / mask.sum(1).clamp_min(1)).cpu().numpy()
    return out

"""Train and load the byte-level BPE tokenizer of the embedded default model.

Digits, CJK characters and punctuation are isolated by the pre-tokenizer before
byte-level BPE runs, so that ``12|34`` or ``答案：`` never merge across the
prompt/answer boundary (measured on this project's tasks: plain byte-level BPE merges digits
across numbers and wrecks arithmetic).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<s>", "</s>")
ISOLATE_PATTERN = r"\p{N}|\p{Han}|\p{P}|\p{S}"


def train_tokenizer(texts: Iterable[str], vocab_size: int, out_dir: str | Path,
                    model_max_length: int = 512) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``texts`` and save it as a HF tokenizer dir.

    Deterministic for the same texts in the same order.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(ISOLATE_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>", bos_token="<s>", eos_token="</s>",
        padding_side="right", model_max_length=model_max_length,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(out)
    return hf


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    """Load a tokenizer directory (ours or a local Hugging Face model's), offline.

    Ensures a pad token exists (falls back to EOS, as is usual for Llama). A missing
    directory (which transformers would read as a hub id) or one whose tokenizer does not
    load is a :class:`~swift_study.core.errors.DataError` naming the directory.
    """
    from transformers import AutoTokenizer

    from ..core.errors import DataError

    path = Path(path)
    if not path.is_dir():  # never let transformers read a missing local path as a hub id
        raise DataError(f"{path}: no such tokenizer directory")
    try:
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - e.g. no tokenizer files: name the directory
        first = (str(exc).strip().splitlines() or [""])[0]
        raise DataError(f"{path}: cannot load the tokenizer ({type(exc).__name__}: {first})") from exc
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok

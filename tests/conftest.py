"""Shared fixtures. Everything runs offline on the `tiny` preset."""
import os
from pathlib import Path

import pytest

from swift_study.core.offline import set_offline

from parallel import WORKERS
from tiny_model import tiny_llama

set_offline()
if WORKERS > 1:  # parallel workers (tests/parallel.py): one thread each, waits that sleep, not spin
    import torch

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tiny_config():
    from swift_study.pipeline.config import load_config

    return load_config(REPO / "config" / "tiny.yaml")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A saved hidden-32 Llama with its own trained tokenizer (a local model directory)."""
    from swift_study.model.tokenizer import load_tokenizer, train_tokenizer

    root = tmp_path_factory.mktemp("tiny_model")
    texts = [f"{a}加{b}等于多少？\n答案：{a + b}" for a in range(30) for b in range(10)]
    train_tokenizer(texts, 200, root / "tok", model_max_length=128)
    tok = load_tokenizer(root / "tok")
    model = tiny_llama(tok, seed=0)
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    return root / "model"


@pytest.fixture(scope="session")
def tiny_swift_once(tmp_path_factory) -> Path:
    """The tiny preset's `swift` target, built once per test session (shared_runs.py)."""
    from shared_runs import build_once

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # the workers' common folder of this session
        root = root.parent
    return build_once(root, "tiny-swift-once", ["swift"])

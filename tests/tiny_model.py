"""The tests' smallest Llama: one architecture for every test that builds a model."""
from swift_study.model.modeling import build_tiny_llama

#: hidden 32, 2 layers: big enough for every code path, small enough for seconds per test
ARCH = dict(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, max_position_embeddings=128)


def tiny_llama(tokenizer, seed: int = 0):
    """A freshly initialised test Llama for ``tokenizer``."""
    return build_tiny_llama(ARCH, tokenizer, seed=seed)

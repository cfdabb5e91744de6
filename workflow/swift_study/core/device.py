"""Device choice (the one owner): ``auto`` means CUDA when present, else CPU."""

from __future__ import annotations


def resolve_device(requested: str = "auto") -> str:
    """The device name for ``requested`` (``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``)."""
    if requested == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(requested)


def pick_device(requested: str = "auto"):
    """:func:`resolve_device` as a ``torch.device``."""
    import torch

    return torch.device(resolve_device(requested))

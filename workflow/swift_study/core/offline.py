"""The offline environment (the one owner): no process of the workflow may reach a hub."""

from __future__ import annotations

import os

OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def set_offline() -> None:
    """Forbid every hub download in this process (and the processes it starts)."""
    for var in OFFLINE_VARS:
        os.environ[var] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def offline_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of ``base`` (default ``os.environ``) with the offline variables set, for subprocesses."""
    env = dict(os.environ if base is None else base)
    env.update({var: "1" for var in OFFLINE_VARS})
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env

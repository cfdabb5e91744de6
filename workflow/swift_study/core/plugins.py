"""User code named in the config as ``module:function`` (strategies, selectors): the one loader."""

from __future__ import annotations

import importlib
from typing import Callable


def load_callable(spec: str, key: str) -> Callable:
    """Import ``module:function``; errors are :class:`ConfigError` naming the config ``key``."""
    from .errors import ConfigError

    mod_name, _, fn_name = spec.partition(":")
    if not mod_name or not fn_name:
        raise ConfigError(f"config key {key}: expected 'module:function', got {spec!r}")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as exc:
        raise ConfigError(f"config key {key}: cannot import module {mod_name!r} ({exc})") from exc
    fn = getattr(mod, fn_name, None)
    if fn is None:
        raise ConfigError(f"config key {key}: cannot import {fn_name!r} from module {mod_name!r} (no such name)")
    if not callable(fn):
        raise ConfigError(f"config key {key}: {spec!r} is not callable")
    return fn

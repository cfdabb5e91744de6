"""Load and validate the workflow configuration against its JSON schema.

The schema (``workflow/schemas/config.schema.yaml``) forbids unknown keys and
fills in defaults, so every consumer sees a complete config. Errors name the key
path (``swift.gradients.engine``) and the reason.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping

import jsonschema
import yaml

from ..core.errors import ConfigError

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"


def _with_defaults(cls):
    """A jsonschema validator class that fills in ``default`` values (nested too)."""
    validate_props = cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if "default" in sub and prop not in instance:
                    instance[prop] = copy.deepcopy(sub["default"])
        yield from validate_props(validator, properties, instance, schema)

    return jsonschema.validators.extend(cls, {"properties": set_defaults})


def _inline_refs(node: Any, definitions: Mapping[str, Any]) -> Any:
    """Replace local ``{"$ref": "#/definitions/X"}`` nodes by (merged) copies of X."""
    if isinstance(node, dict):
        node = {k: _inline_refs(v, definitions) for k, v in node.items()}
        ref = node.pop("$ref", None)
        if ref is not None:
            base = _inline_refs(definitions[ref.rsplit("/", 1)[-1]], definitions)
            node = {**base, **node}
        return node
    if isinstance(node, list):
        return [_inline_refs(v, definitions) for v in node]
    return node


def load_schema() -> dict[str, Any]:
    """The config JSON schema as a dict, with local ``$ref`` definitions inlined."""
    with SCHEMA_PATH.open(encoding="utf-8") as fh:
        schema = yaml.safe_load(fh)
    definitions = schema.pop("definitions", {})
    return _inline_refs(schema, definitions)


#: The repository root: a relative ``model.local_dir`` missing from the working directory
#: is looked up here (the shipped ``models/``), so runs with ``--directory`` find it.
REPO_ROOT = Path(__file__).resolve().parents[3]


def resolve_local_dir(local_dir: str | None) -> str | None:
    """``model.local_dir`` as given, or under the repository root when it is relative and
    only exists there."""
    if not local_dir or Path(local_dir).is_absolute() or Path(local_dir).exists():
        return local_dir
    shipped = REPO_ROOT / local_dir
    return str(shipped) if shipped.exists() else local_dir


#: Validation training keys that default (null) to the warm-up's values.
WARMUP_RECIPE: tuple[str, ...] = ("learning_rate", "num_epochs", "batch_size")


def validate_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``cfg`` and return a copy with defaults filled in.

    Raises :class:`ConfigError` naming the offending key.
    """
    out = copy.deepcopy(dict(cfg))
    validator = _with_defaults(jsonschema.Draft7Validator)(load_schema())
    errors = sorted(validator.iter_errors(out), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        lines = []
        for err in errors[:5]:
            key = ".".join(str(p) for p in err.absolute_path) or "<top level>"
            lines.append(f"config key {key}: {err.message}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))
    from ..data.suite import studies_from_config
    from ..data.tasks import TASKS, difficulty_params

    studies_from_config(out)  # cross-key checks (tasks and strategies exist)
    from ..budget.study import check_budget_config

    check_budget_config(out)
    from ..model.states import resolve_start_state, resolve_state, state_names

    names = state_names(out["warmup"]["export_steps"], out["warmup"]["method"])
    resolve_start_state(out["validation"]["start_state"], names, "validation.start_state")
    out["model"]["local_dir"] = resolve_local_dir(out["model"]["local_dir"])
    for key in WARMUP_RECIPE:  # null: repeat the warm-up's recipe (docs/method.md, "Validation study")
        if out["validation"][key] is None:
            out["validation"][key] = out["warmup"][key]
    resolve_start_state(out["budget"]["start_state"], names, "budget.start_state")
    for s in out["budget"]["states"]:
        resolve_state(s, names, "budget.states")
    if out["warmup"]["method"] == "lora" and out["swift"]["gradients"]["subset"] != "lora":
        raise ConfigError("config key swift.gradients.subset: LoRA model states (warmup.method: lora) take "
                          "gradients over the LoRA weights, as LESS does; set it to lora")
    for task, params in out["suite"]["difficulty"].items():
        if task not in TASKS:
            raise ConfigError(f"config key suite.difficulty.{task}: not a built-in task; built-in: {sorted(TASKS)}")
        for name in params:
            if name not in difficulty_params(task):
                raise ConfigError(f"config key suite.difficulty.{task}.{name}: unknown parameter; "
                                  f"{task} has {sorted(difficulty_params(task))}")
        check_difficulty(task, params)
    return out


#: The largest value of any difficulty parameter: 100 digits or letters (or a word
#: problem's start value) are far beyond what this study's models learn, and larger
#: values only make the query generator slow (a billion digits would never finish).
DIFFICULTY_MAX = 100
#: Queries drawn to try a task's difficulty (a contradiction such as ``min_len > max_len``
#: fails on the first; ``max_len`` beyond the alphabet on some draw, nearly surely).
DIFFICULTY_TRIALS = 500


def check_difficulty(task: str, params: Mapping[str, int]) -> None:
    """``suite.difficulty.<task>``'s values are ones the task's generator accepts: each at
    most :data:`DIFFICULTY_MAX`, and :data:`DIFFICULTY_TRIALS` queries drawn with them
    (a fixed seed; milliseconds) raise nothing. Raises :class:`ConfigError` naming the key."""
    import random

    from ..data.tasks import TASKS

    for name, value in params.items():
        if int(value) > DIFFICULTY_MAX:
            raise ConfigError(f"config key suite.difficulty.{task}.{name}: {value} is beyond any task's range "
                              f"(at most {DIFFICULTY_MAX})")
    rng = random.Random(0)
    try:
        for _ in range(DIFFICULTY_TRIALS):
            TASKS[task](rng, "en", **params)
    except Exception as exc:  # noqa: BLE001 - whatever the generator raises, these values caused it
        raise ConfigError(f"config key suite.difficulty.{task}: {dict(params)} cannot generate {task} queries "
                          f"({type(exc).__name__}: {exc})") from exc


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Parse one YAML config file; a syntax error names ``file:line:column`` and the problem."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as fh:
            cfg = yaml.safe_load(fh) or {}
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    except RecursionError as exc:
        raise ConfigError(f"{path}: cannot read config (nested too deeply)") from exc
    except (OSError, ValueError, yaml.YAMLError) as exc:  # ValueError: not UTF-8, an integer too long to convert
        raise ConfigError(f"{path}: cannot read config ({exc})") from exc
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: top level must be a mapping of config keys")
    return cfg


def merge_config(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``update`` merged into a copy of ``base``, mappings key by key (as Snakemake
    merges ``--configfile`` files over the Snakefile's ``configfile:``)."""
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_config(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Read a YAML config file, apply shallow ``overrides`` and validate it."""
    cfg = read_config_file(path)
    cfg.update(overrides or {})
    return validate_config(cfg)

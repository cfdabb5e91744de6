"""``config/README.md``, generated from the config schema so that it cannot drift.

Every key of ``workflow/schemas/config.schema.yaml`` carries a ``description``;
:func:`render_config_docs` turns the schema into one Markdown table per top-level
section (key, default, allowed values, description). ``swift-study config-docs``
writes the file; a test checks that the committed file equals the rendering and
that no key lacks a description.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Mapping

from .config import load_schema

DOC_PATH = Path(__file__).resolve().parents[3] / "config" / "README.md"

HEADER = """# Configuration keys

Generated from `workflow/schemas/config.schema.yaml` by `swift-study config-docs`
(do not edit by hand; a test checks that this file matches the schema). Every key is
optional unless marked *required*; unknown keys are errors, and a run checks the
whole configuration before its first job (`swift-study check --configfile FILE`).

Presets: `config/config.yaml` (the embedded default, CPU, minutes),
`config/tiny.yaml` (tests), `config/paper.yaml` (a local Chinese-LLaMA-2-style
model on a GPU). Pass your own file with `--configfile`: its keys are merged over
`config/config.yaml`.
"""


def iter_keys(schema: Mapping[str, Any], prefix: str = "",
              required: frozenset[str] = frozenset()) -> Iterator[tuple[str, Mapping[str, Any], bool]]:
    """``(dotted key, schema node, required)`` for every key, parents before children;
    the keys of list items are written ``studies[].name``."""
    for key, node in (schema.get("properties") or {}).items():
        path = f"{prefix}{key}"
        yield path, node, key in required
        child_required = frozenset(node.get("required", ()))
        if node.get("properties"):
            yield from iter_keys(node, path + ".", child_required)
        items = node.get("items")
        if isinstance(items, Mapping) and items.get("properties"):
            yield from iter_keys(items, path + "[].", frozenset(items.get("required", ())))


def _allowed(node: Mapping[str, Any]) -> str:
    items = node.get("items") if isinstance(node.get("items"), Mapping) else {}
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    if "enum" in items:
        return "list of " + " \\| ".join(f"`{v}`" for v in items["enum"])
    kind = node.get("type", "")
    kind = " or ".join(kind) if isinstance(kind, list) else kind
    if kind == "array":
        kind = f"list of {items.get('type', 'item')}s" if items.get("properties") is None else "list of mappings"
    bounds = [f">= {node['minimum']}" if "minimum" in node else "",
              f"> {node['exclusiveMinimum']}" if "exclusiveMinimum" in node else "",
              f"<= {node['maximum']}" if "maximum" in node else "",
              f"< {node['exclusiveMaximum']}" if "exclusiveMaximum" in node else ""]
    bounds = ", ".join(b for b in bounds if b)
    return f"{kind} {bounds}".strip() if kind != "object" else "mapping"


def _default(node: Mapping[str, Any], required: bool) -> str:
    if required:
        return "*required*"
    if "default" not in node or (node.get("type") == "object" and node.get("properties")):
        return ""
    return f"`{json.dumps(node['default'], ensure_ascii=False)}`"


def render_config_docs(schema: Mapping[str, Any] | None = None) -> str:
    """The Markdown of ``config/README.md``."""
    schema = schema or load_schema()
    out = [HEADER]
    section = None
    for path, node, required in iter_keys(schema, required=frozenset(schema.get("required", ()))):
        top = path.split(".")[0].split("[")[0]
        top_node = schema["properties"][top]
        if not (top_node.get("properties") or isinstance(top_node.get("items"), Mapping)):
            top = "top level"
        if top != section:
            section = top
            out.append(f"\n## {top if top == 'top level' else f'`{top}`'}\n")
            out.append("| key | default | allowed | description |")
            out.append("|---|---|---|---|")
        desc = " ".join(str(node.get("description", "")).split()).replace("|", "\\|")
        out.append(f"| `{path}` | {_default(node, required)} | {_allowed(node)} | {desc} |")
    return "\n".join(out) + "\n"


def undocumented_keys(schema: Mapping[str, Any] | None = None) -> list[str]:
    """Keys of the schema without a description."""
    schema = schema or load_schema()
    return [p for p, node, _ in iter_keys(schema) if not node.get("description")]


def write_config_docs(path: Path = DOC_PATH) -> Path:
    """Write :func:`render_config_docs` to ``path`` (``config/README.md``)."""
    path.write_text(render_config_docs(), encoding="utf-8")
    return path

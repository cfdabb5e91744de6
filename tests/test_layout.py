"""The house rules of the layout (issue 31): the package by stage, no function over 80 lines
and no module over 500 lines in workflow/ and benchmarks/, every sub-package documented."""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for d in ("workflow", "benchmarks") for p in (REPO / d).rglob("*.py")
                 if ".snakemake" not in p.parts)
PACKAGE = REPO / "workflow" / "swift_study"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_module_over_500_lines_and_no_function_over_80(path):
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 500, f"{path.relative_to(REPO)}: {len(text.splitlines())} lines"
    long = [f"{n.name} ({n.end_lineno - n.lineno + 1} lines)" for n in ast.walk(ast.parse(text))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 80]
    assert not long, f"{path.relative_to(REPO)}: {', '.join(long)}"


def test_the_package_is_cut_by_stage_and_each_stage_says_what_it_owns():
    subs = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))
    assert {"core", "data", "model", "swift", "validation", "alignment", "budget", "report", "pipeline"} <= set(subs)
    flat = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert flat == ["__init__.py", "cli.py"], flat  # no module left in the flat folder
    for sub in subs:
        doc = ast.get_docstring(ast.parse((PACKAGE / sub / "__init__.py").read_text(encoding="utf-8")))
        assert doc and len(doc) > 60, f"swift_study/{sub}/__init__.py: no docstring saying what it owns"

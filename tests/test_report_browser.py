"""The HTML report opened in a real browser (headless Chromium): every image loaded, every
section present, a screenshot taken. The report is rendered from the real template with
real figures of small synthetic results (the tiny preset's own report is checked the same
way by `make check-report` and tests/test_workflow.py).

Skipped without Chromium, unless SWIFT_REQUIRE_CHROMIUM=1 (CI installs it, see .ci/run)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from swift_study.report.browser import REPORT_SECTIONS, check_report, find_chromium
from swift_study.report.figures import plot_state_accuracy, plot_validation
from swift_study.report.answer import strategy_table, strategy_table_html
from swift_study.report.html import csv_table, image_data_uri, render_report

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "workflow" / "report" / "report.html.j2"

if find_chromium() is None and os.environ.get("SWIFT_REQUIRE_CHROMIUM") != "1":
    pytest.skip("no Chromium (apt-get install -y chromium)", allow_module_level=True)


def _swift() -> pd.DataFrame:
    """A swift summary of one study at one state."""
    return pd.DataFrame([dict(study="cot", strategy="cot", context=c, state="step-3", relinf=1.2, relinf_lo=0.9,
                              relinf_hi=1.5, diff=0.02, diff_lo=-0.01, diff_hi=0.05)
                         for c in ("in", "cross", "task:add", "task:sub")])


def _report(tmp_path: Path) -> tuple[Path, int]:
    """A report of every section, with two real figures; returns it and its image count."""
    rng = np.random.default_rng(0)
    acc = pd.DataFrame(rng.random((2, 3)), index=["base", "step-3"], columns=["add", "sub", "all"])
    acc.to_csv(tmp_path / "acc.csv")
    plot_state_accuracy(acc, tmp_path / "acc.png")
    val = pd.DataFrame([dict(study="cot", strategy="cot", context=c, in_task=c == "task:add", delta_em=0.1,
                             delta_em_lo=0.0, delta_em_hi=0.2, delta_em_ctrl=-0.05, delta_em_ctrl_lo=-0.1,
                             delta_em_ctrl_hi=0.0) for c in ("in", "cross", "task:add", "task:sub")])
    val.to_csv(tmp_path / "val.csv", index=False)
    plot_validation(val, tmp_path / "val.png")
    fig, table = image_data_uri(tmp_path / "val.png"), csv_table(tmp_path / "val.csv")
    ctx = {"results": "results-tiny", "headline": "The swift study predicted 3 of 4 cells.",
           "swift_figures": [{"title": "Study: cot", "uri": fig}, {"title": "Study: corrupt", "uri": fig}],
           "swift_table": table, "state_accuracy_uri": image_data_uri(tmp_path / "acc.png"),
           "state_accuracy_table": csv_table(tmp_path / "acc.csv"), "validation_uri": fig,
           "validation_table": table, "generations_table": table, "alignment_uri": fig, "alignment_table": table,
           "cost_table": table, "flops_table": table, "league_uri": fig, "league_table": table,
           "config_yaml": "seed: 7\n", "budget_uri": fig, "budget_md": "budget", "lds_uri": None, "lds_md": None,
           "strategy_table": strategy_table_html(strategy_table(_swift(), val.assign(
               delta_ctrl=val["delta_em_ctrl"], delta_ctrl_lo=val["delta_em_ctrl_lo"],
               delta_ctrl_hi=val["delta_em_ctrl_hi"]), "step-3")),
           "league_top": table, "league_rows": 4, "headline_state": "step-3", "metric": "em",
           "baselines_uri": fig, "baselines_table": table}
    out = tmp_path / "report.html"
    render_report(TEMPLATE, out, ctx)
    return out, 8


def test_the_report_opens_in_chromium_with_every_image_and_section(tmp_path):
    report, n_images = _report(tmp_path)
    res = check_report(report, tmp_path / "shot" / "report.png")
    assert res.ok, res.problems
    assert len(res.images) == n_images and all(im["width"] > 100 for im in res.images)
    assert set(REPORT_SECTIONS) | {"budget"} <= set(res.sections) and "lds" not in res.sections
    assert res.screenshot.stat().st_size > 20_000
    assert res.first_table == "strategies"  # the answer per strategy comes before the league


def test_a_report_that_opens_on_another_table_fails_the_check(tmp_path):
    report, _ = _report(tmp_path)
    html = report.read_text(encoding="utf-8").replace('id="strategies"', 'id="other"', 1)
    report.write_text(html, encoding="utf-8")
    res = check_report(report, tmp_path / "bad.png")
    assert "first table is #other, not #strategies" in res.problems


def test_a_broken_image_and_a_missing_section_fail_the_check(tmp_path):
    report, _ = _report(tmp_path)
    html = report.read_text(encoding="utf-8")
    uri = html.split('<img src="', 1)[1].split('"', 1)[0]
    html = html.replace(uri, "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA", 1)  # cut short
    html = html.replace('<h2 id="alignment">', "<h2>", 1)
    report.write_text(html, encoding="utf-8")
    res = check_report(report, tmp_path / "bad.png")
    assert not res.ok
    assert any(p.startswith("image not loaded: alignment") for p in res.problems), res.problems
    assert "section missing: #alignment" in res.problems

"""Open the HTML report in a real browser (headless Chromium) and check what a reader sees.

:func:`check_report` loads a copy of the report with a small script appended that, once
the page has loaded, writes into the page what the browser made of it (each image's
natural size, the section headings, the navigation targets); Chromium's ``--dump-dom``
prints that page, and a second run takes a full-page screenshot. The report passes when
every image decoded (natural width and height above 0), every section the navigation
links to is there, the ``required`` sections too, and the screenshot is a real picture.

Chromium runs with a fresh profile, no network of its own (``--disable-background-networking``
etc.) and, as root, without its sandbox. Debian's package is ``chromium``
(``apt-get install -y chromium``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path

from ..core.errors import SwiftStudyError

# the sections of workflow/report/report.html.j2 that every report has (lds and budget are optional)
REPORT_SECTIONS: tuple[str, ...] = ("answer", "alignment", "league", "swift", "states", "validation", "cost", "config")
#: the id of the table a report must open with (the answer per strategy, before the league)
FIRST_TABLE = "strategies"
_MARK = "swift-browser-check"
_PROBE = f"""
<script>
window.addEventListener("load", function () {{
  var imgs = Array.prototype.map.call(document.images, function (im) {{
    return {{alt: im.alt, complete: im.complete, width: im.naturalWidth, height: im.naturalHeight}};
  }});
  var ids = Array.prototype.map.call(document.querySelectorAll("h2[id]"), function (h) {{ return h.id; }});
  var nav = Array.prototype.map.call(document.querySelectorAll("nav a[href^='#']"), function (a) {{
    return a.getAttribute("href").slice(1);
  }});
  var out = document.createElement("pre");
  out.id = "{_MARK}";
  var first = document.querySelector("table");
  out.textContent = JSON.stringify({{images: imgs, sections: ids, nav: nav, first_table: first ? first.id : null}});
  document.body.appendChild(out);
}});
</script>
"""
_FLAGS = ["--headless", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
          "--disable-component-update", "--disable-sync", "--disable-extensions", "--hide-scrollbars",
          "--mute-audio", "--virtual-time-budget=10000"]


class BrowserMissing(SwiftStudyError):
    """No Chromium on this machine."""


@dataclass
class ReportCheck:
    """What Chromium saw in a report, and what is wrong with it (``problems`` empty: pass)."""

    images: list[dict] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    first_table: str | None = None
    screenshot: Path | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def find_chromium() -> str | None:
    """Path of the Chromium executable (``$CHROMIUM``, then ``chromium``, ``chromium-browser``
    on the PATH), or None."""
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser"):
        if name and (path := shutil.which(name)):
            return path
    return None


def _chromium(binary: str, args: list[str], profile: Path, timeout: float) -> subprocess.CompletedProcess:
    cmd = [binary, *_FLAGS, f"--user-data-dir={profile}", *args]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def check_report(report: str | Path, screenshot: str | Path | None = None,
                 required: tuple[str, ...] = REPORT_SECTIONS, chromium: str | None = None,
                 timeout: float = 120.0, first_table: str | None = FIRST_TABLE) -> ReportCheck:
    """Open ``report`` in headless Chromium: every image loaded, every linked and every
    ``required`` section present, the page's first table the one with id ``first_table``
    (the answer per strategy), a full-page screenshot written to ``screenshot``
    (default: ``report`` with ``.png``). Raises :class:`BrowserMissing` without Chromium."""
    report = Path(report).resolve()
    binary = chromium or find_chromium()
    if binary is None:
        raise BrowserMissing("no Chromium found (Debian: apt-get install -y chromium; or set $CHROMIUM)")
    shot = Path(screenshot) if screenshot is not None else report.with_suffix(".png")
    result = ReportCheck(screenshot=shot)
    html = report.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="swift-browser-") as tmp:
        probe_page = Path(tmp) / report.name
        probe_page.write_text(html.replace("</body>", _PROBE + "</body>") if "</body>" in html else html + _PROBE,
                              encoding="utf-8")
        dom = _chromium(binary, ["--dump-dom", probe_page.as_uri()], Path(tmp) / "profile-dom", timeout)
        found = re.search(rf'<pre id="{_MARK}">(.*?)</pre>', dom.stdout, flags=re.S)
        if not found:
            result.problems.append(f"Chromium did not load the page (exit {dom.returncode}): "
                                   f"{dom.stderr.strip()[-500:]}")
            return result
        seen = json.loads(unescape(found.group(1)))
        result.images, result.sections = seen["images"], seen["sections"]
        result.first_table = seen.get("first_table")
        if first_table is not None and result.first_table != first_table:
            result.problems.append(f"first table is #{result.first_table}, not #{first_table}")
        if not result.images:
            result.problems.append("no image in the report")
        for im in result.images:
            if not (im["complete"] and im["width"] > 0 and im["height"] > 0):
                result.problems.append(f"image not loaded: {im['alt'] or '(no alt)'}")
        for sec in list(dict.fromkeys([*required, *seen["nav"]])):
            if sec not in result.sections:
                result.problems.append(f"section missing: #{sec}")
        shot.parent.mkdir(parents=True, exist_ok=True)
        snap = _chromium(binary, [f"--screenshot={shot.resolve()}", "--window-size=1280,6000", report.as_uri()],
                         Path(tmp) / "profile-shot", timeout)
    if not shot.is_file() or shot.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n" or shot.stat().st_size < 20_000:
        result.problems.append(f"no screenshot written (exit {snap.returncode}): {snap.stderr.strip()[-300:]}")
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m swift_study.report.browser REPORT [SCREENSHOT]``: exit 0 when the report passes."""
    import argparse

    parser = argparse.ArgumentParser(description="open the HTML report in headless Chromium and check it")
    parser.add_argument("report", help="the report, e.g. results-tiny/report.html")
    parser.add_argument("screenshot", nargs="?", help="where the full-page screenshot goes (default REPORT.png)")
    args = parser.parse_args(argv)
    try:
        res = check_report(args.report, args.screenshot)
    except SwiftStudyError as exc:
        print(f"error: {exc}")
        return 1
    for p in res.problems:
        print(f"error: {p}")
    if res.ok:
        print(f"ok: {len(res.images)} images loaded, sections {', '.join(res.sections)}; screenshot {res.screenshot}")
    return 0 if res.ok else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

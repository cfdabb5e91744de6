"""Render the self-contained HTML report (images inlined, works offline)."""

from __future__ import annotations

import base64
import datetime as _dt
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import yaml


def image_data_uri(path: str | Path) -> str:
    """A PNG file as a ``data:`` URI, so the report has no external files."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"data:image/png;base64,{data}"


def csv_table(path: str | Path, float_format: str = "{:.3g}", rows: int | None = None) -> str:
    """A CSV file (its first ``rows`` rows, or all) as an HTML table."""
    df = pd.read_csv(path)
    if rows is not None:
        df = df.head(rows)
    return df.to_html(index=False, border=0, classes="table", na_rep="",
                      float_format=lambda x: float_format.format(x))


def render_report(template_path: str | Path, out_path: str | Path, context: Mapping[str, Any]) -> None:
    """Fill the Jinja2 template with ``context`` and write the report atomically."""
    import jinja2

    from ..core.atomic import atomic_write_text

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(Path(template_path).parent)),
                             autoescape=jinja2.select_autoescape(["html", "j2"]))
    template = env.get_template(Path(template_path).name)
    html = template.render(generated=_dt.datetime.now().strftime("%Y-%m-%d %H:%M"), **context)
    atomic_write_text(out_path, html)


def config_yaml(config: Mapping[str, Any]) -> str:
    """The effective (validated, defaults filled) configuration as YAML text."""
    return yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True)

"""Self-contained HTML reports: plotly figures, metric tables, parameters.

The report is one HTML file that opens offline: plotly's JavaScript is
inlined once, every figure after the first reuses it.
"""
from __future__ import annotations

import datetime as _dt
import html
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import atomic_write_text

__all__ = ["ReportSection", "write_report"]


@dataclass
class ReportSection:
    """One section of a report.

    Parameters
    ----------
    title : str
        Section heading.
    text : str
        Plain-text paragraphs (blank-line separated); escaped when rendered.
    table : mapping, optional
        Flat ``{label: value}`` rows shown as a two-column table.
    figures : sequence of plotly.graph_objects.Figure
        Figures shown below the text.
    """

    title: str
    text: str = ""
    table: Mapping[str, Any] = field(default_factory=dict)
    figures: Sequence[Any] = ()


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list, tuple)):
        return html.escape(json.dumps(value))
    return html.escape(str(value))


def _table_html(rows: Mapping[str, Any]) -> str:
    body = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{_format_value(v)}</td></tr>" for k, v in rows.items()
    )
    return f"<table>{body}</table>"


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em} h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0} th,td{border:1px solid #ddd;padding:.3em .7em;text-align:left;vertical-align:top}
th{background:#f6f6f6;font-weight:600} p{line-height:1.45} .meta{color:#666;font-size:.9em}
"""


def write_report(
    path: str | os.PathLike,
    title: str,
    sections: Sequence[ReportSection],
    parameters: Mapping[str, Any] | None = None,
) -> Path:
    """Write a self-contained HTML report atomically.

    Parameters
    ----------
    path : path-like
        Destination ``.html`` file; its folder must exist.
    title : str
        Report title.
    sections : sequence of ReportSection
        Sections in display order.
    parameters : mapping, optional
        Run parameters, shown in a final table.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='meta'>Written {_dt.datetime.now().isoformat(timespec='seconds')}</p>",
    ]
    plotly_inlined = False
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        for paragraph in filter(None, (p.strip() for p in section.text.split("\n\n"))):
            parts.append(f"<p>{html.escape(paragraph)}</p>")
        if section.table:
            parts.append(_table_html(section.table))
        for figure in section.figures:
            parts.append(figure.to_html(full_html=False, include_plotlyjs=not plotly_inlined))
            plotly_inlined = True
    if parameters:
        parts.append("<h2>Parameters</h2>")
        parts.append(_table_html(parameters))
    parts.append("</body></html>")
    return atomic_write_text(path, "\n".join(parts))

"""The sweep report: which noise configurations reliably generalize better than no noise.

:func:`build_report` turns the store's records into a JSON-ready dict (the comparisons in
:mod:`sweeper.stats`, the words in :mod:`sweeper.report.prose`); it reads only the store and writes
nothing. :mod:`sweeper.report.render` shows it as a terminal table,
Markdown, HTML, CSV or JSON, and :func:`write_report` writes it with its figures
(:mod:`sweeper.report.plots`).
"""

from sweeper.report.build import build_report
from sweeper.report.render import render_csv, render_html, render_json, render_markdown, render_table, write_report

__all__ = [
    "build_report",
    "render_csv",
    "render_html",
    "render_json",
    "render_markdown",
    "render_table",
    "write_report",
]

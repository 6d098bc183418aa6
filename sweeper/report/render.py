"""Render a report dict (from :func:`sweeper.report.build.build_report`) as a terminal table, Markdown, HTML, CSV or
JSON."""

from __future__ import annotations

import base64
import contextlib
import csv
import html
import io
import json
from pathlib import Path

from matplotlib.figure import Figure
from rich.table import Table
from rich.text import Text

from sweeper.errors import SweeperError
from sweeper.records import describe
from sweeper.report import across as across_section
from sweeper.report import plots

FORMATS = ("markdown", "html", "json", "csv")
VERDICT_STYLES = {
    "better": "bold green",
    "worse": "bold red",
    "no_difference": "dim",
    "baseline": "bold",
    "incomparable": "yellow",
}
HEADER = (
    "rank",
    "configuration",
    "n",
    "div.",
    "no learn.",
    "selected on",
    "test mean [95% CI]",
    "ECE",
    "Δ vs none [95% CI]",
    "P(improve) [95% CI]",
    "p",
    "p adj.",
    "verdict",
    "P(best)",
    "gap",
    "MDE",
)
#: The verdicts ``--verdict`` may keep.
VERDICTS = ("better", "worse", "no_difference", "incomparable")


# --- cells shared by every tabular format ----------------------------------------------------------


def _num(x, signed: bool = False) -> str:
    if x is None:
        return "—"
    return f"{x:+.3g}" if signed else f"{x:.3g}"


def _p(x) -> str:
    if x is None:
        return "—"
    return f"{x:.1e}" if x < 1e-3 else f"{x:.3f}"


def _prob(x) -> str:
    return "—" if x is None else f"{x:.2f}"


def _interval(value, ci, fmt=_num) -> str:
    if value is None:
        return "—"
    if ci is None or None in ci:
        return fmt(value)
    return f"{fmt(value)} [{fmt(ci[0])}, {fmt(ci[1])}]"


def _signed(x) -> str:
    return _num(x, signed=True)


def _cells(c: dict) -> list[str]:
    """One configuration's row, formatted, in the order of HEADER."""
    return [
        f"{c['rank']:.3g}",
        c["label"],
        str(c["n"]),
        str(c["diverged"]),
        str(c["failed_to_learn"]),
        _num(c.get("selection_mean")),
        _interval(c["mean"], c["ci"]),
        _num(c.get("ece")),
        "baseline" if c["verdict"] == "baseline" else _interval(c["delta"], c["delta_ci"], _signed),
        _interval(c["p_improve"], c["p_improve_ci"], _prob),
        _p(c["p_value"]),
        _p(c["p_adjusted"]),
        c["verdict"],
        _prob(c["p_best"]),
        _signed(c["gap"]),
        _num(c["mde"]),
    ]


def _direction(report: dict) -> str:
    return (
        f"selected on {report['selected_on']}, estimated on {report['metric']}; "
        f"{'higher' if report['higher_is_better'] else 'lower'} is better"
    )


def _header(report: dict) -> tuple[list[int], tuple[str, ...]]:
    """The columns this report fills: no "selected on" where that is the test part itself, no ECE for regression."""
    drop = set()
    if report.get("shared"):
        drop.add("selected on")
    if all(c.get("ece") is None for c in report["configs"]):
        drop.add("ECE")
    keep = [i for i, name in enumerate(HEADER) if name not in drop]
    return keep, tuple(HEADER[i] for i in keep)


def _rows(report: dict, configs: list[dict]) -> list[list[str]]:
    keep, _ = _header(report)
    return [[cells[i] for i in keep] for cells in map(_cells, configs)]


def select_configs(
    configs: list[dict], *, top: int | None = None, verdicts: tuple[str, ...] | None = None
) -> list[dict]:
    """The configurations ``--top N`` and ``--verdict`` keep, in their order; the baseline always stays."""
    kept = [c for c in configs if c["verdict"] == "baseline" or verdicts is None or c["verdict"] in verdicts]
    if top is not None:
        others = [c for c in kept if c["verdict"] != "baseline"][:top]
        kept = [c for c in kept if c["verdict"] == "baseline" or c in others]
    return kept


def filtered(report: dict, *, top: int | None = None, verdicts: tuple[str, ...] | None = None) -> dict:
    """The report with its tables (and so its plots) cut to what ``--top``/``--verdict`` keep; the
    statistics are those of the whole sweep, and ``shown`` says how many configurations were left out."""
    if top is None and verdicts is None:
        return report
    cut = dict(report, configs=select_configs(report["configs"], top=top, verdicts=verdicts))
    cut["shown"] = {
        "configs": len(cut["configs"]),
        "of": len(report["configs"]),
        "top": top,
        "verdicts": list(verdicts) if verdicts else None,
    }
    if report.get("tasks"):
        cut["tasks"] = [
            dict(t, configs=select_configs(t["configs"], top=top, verdicts=verdicts)) for t in report["tasks"]
        ]
    return cut


def shown_line(report: dict) -> str | None:
    """Which configurations a filtered report's tables show, or None when they show all."""
    shown = report.get("shown")
    if not shown:
        return None
    how = []
    if shown["verdicts"]:
        how.append("verdict " + " or ".join(shown["verdicts"]))
    if shown["top"] is not None:
        how.append(f"the top {shown['top']}")
    return (
        f"Showing {shown['configs']} of {shown['of']} configurations ({', '.join(how)}; the baseline always); "
        "the statistics are those of the whole sweep."
    )


#: What the report says of a sweep stored before its setting was (schema 0006), or built without it.
UNKNOWN_SETTING = "tasks, split sizes and the planned configurations: unknown (not stored with the sweep)"


def setting_lines(report: dict) -> list[str]:
    """What the sweep ran: each task's data, split sizes, model and training; the space, seed, repeats, dates."""
    setting = report.get("setting")
    if not setting:
        return [UNKNOWN_SETTING]
    lines = []
    for t in setting["tasks"]:
        parts = f"{t['n_train']} train, " + (f"{t['n_val']} validation, " if t["n_val"] else "no validation, ")
        parts += f"{t['n_test']} test"
        data = t["dataset"] + (
            f" (fixed sample, dataset_seed {t['dataset_seed']})" if t["dataset_seed"] is not None else ""
        )
        lines.append(
            f"task {t['task']}: {data}, {parts}; {t['model']}; {t['epochs']} epochs, batch {t['batch_size']}, "
            f"{t['optimizer']}"
        )
    done = f", finished {setting['finished_at']}" if setting.get("finished_at") else ""
    lines.append(
        f"search space: {setting['space']}; sweep seed {setting['sweep_seed']}, {setting['repeats']} repeats; "
        f"started {setting.get('created_at')}{done}"
    )
    if any(h["event"] == "extended" for h in setting.get("history", ())):
        lines.append("history: " + "; ".join(map(_history_entry, setting["history"])))
    return lines


def _history_entry(entry: dict) -> str:
    """One step of a sweep's history in words: planned, or extended (what changed), its size after it."""
    size = f"{entry['repeats']} repeats"
    size = size if entry["planned"] is None else f"{entry['planned']} configurations x {size}"
    if entry["event"] == "planned":
        return f"planned {size} at {entry['at']}"
    return f"extended at {entry['at']} ({entry['changes']}) to {size}"


def ran_lines(report: dict) -> list[str]:
    """What ran: the setting, then what trained the runs, one line per distinct engine/device/software/host,
    and what drove the sweep."""
    lines = setting_lines(report)
    lines += [f"{_plural(ran['n_runs'], 'run')}: {describe(ran)}" for ran in report["ran"]["runs"]]
    lines.append(f"driven by `sweeper run`: {describe(report['ran']['sweep'])}")
    return lines


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# --- terminal --------------------------------------------------------------------------------------


#: Columns a terminal narrower than the key leaves out (markdown, html, csv and json keep them all).
NARROW = {
    180: ("div.", "no learn.", "p", "gap", "MDE", "ECE"),
    120: ("n", "P(improve) [95% CI]", "P(best)"),
    100: ("rank",),
}


def render_table(
    report: dict, configs: list[dict] | None = None, *, title: str | None = None, width: int | None = None
) -> Table:
    """A rich table, best configuration first, verdicts coloured. ``configs`` defaults to the report's;
    for a terminal ``width`` the less essential columns are left out."""
    configs = report["configs"] if configs is None else configs
    drop = {name for limit, names in NARROW.items() if width is not None and width < limit for name in names}
    keep = [i for i in _header(report)[0] if HEADER[i] not in drop]
    table = Table(
        title=title or f"{report['sweep']}: {_direction(report)}",
        caption="Δ and P(improve) paired by repeat against no noise on the test part; "
        f"verdict at α = {report['alpha']:g} after Holm" + (f". {shown_line(report)}" if shown_line(report) else ""),
    )
    for name in (HEADER[i] for i in keep):
        words = name in ("configuration", "verdict")
        table.add_column(
            name,
            justify="left" if words else "right",
            overflow="fold",
            min_width=len("no_difference") if name == "verdict" else None,
        )
    verdict = HEADER.index("verdict")
    for c in configs:
        cells = [Text(cell) for cell in _cells(c)]  # Text: no markup parsing of labels
        cells[verdict].stylize(VERDICT_STYLES[c["verdict"]])
        table.add_row(*(cells[i] for i in keep))
    return table


# --- Markdown --------------------------------------------------------------------------------------


def _md_table(header, rows) -> str:
    def line(cells):
        return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *(line(r) for r in rows)])


def _ranking_rows(across: dict) -> list[list[str]]:
    return [[str(i), r["label"], f"{r['average_rank']:.2f}"] for i, r in enumerate(across["ranking"], 1)]


def _friedman_line(across: dict) -> str:
    f = across["friedman"]
    if f is None:
        return "Friedman test: needs at least 3 configurations."
    return (
        f"Friedman χ² = {_num(f['statistic'])} (p = {_p(f['p_value'])}); "
        f"Iman–Davenport F = {_num(f['iman_davenport_f'])} "
        f"(p = {_p(f['iman_davenport_p'])}); Nemenyi critical difference = {_num(across['nemenyi_cd'])}. "
        + across.get("caveat", "")
    )


def render_markdown(report: dict, images: dict[str, str]) -> str:
    """A Markdown document; ``images`` maps a figure's name to the path or URL the document links to."""
    out = [f"# Noise sweep `{report['sweep']}`", "", f"*{_direction(report)}*", "", report["summary"], ""]
    if shown_line(report):
        out += [f"*{shown_line(report)}*", ""]
    out += [_md_table(_header(report)[1], _rows(report, report["configs"])), ""]
    if report.get("across_tasks"):
        across = report["across_tasks"]
        out += [
            "## Across tasks",
            "",
            across["summary"],
            "",
            _md_table(("#", "configuration", "average rank"), _ranking_rows(across)),
            "",
        ]
        out += [_friedman_line(across), ""]
        if report.get("across_data_sets"):
            out += across_section.markdown(report["across_data_sets"])
        for task in report["tasks"]:
            out += [f"## Task `{task['task']}`", "", task["summary"], ""]
            out += [_md_table(_header(report)[1], _rows(report, task["configs"])), ""]
    out += ["## What ran", ""] + [f"- {line}" for line in ran_lines(report)] + [""]
    if images:
        out += ["## Figures", ""]
        for name, path in images.items():
            out += [f"![{name}]({path})", ""]
    out += ["## Methods", ""] + [f"- **{key}**: {text}" for key, text in report["methods"].items()] + [""]
    return "\n".join(out)


# --- HTML ------------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 80em; }
table { border-collapse: collapse; font-size: 0.9em; margin: 1em 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.6em; text-align: right; }
td:nth-child(2), th:nth-child(2) { text-align: left; }
.better { color: #1a9850; font-weight: bold; } .worse { color: #d73027; font-weight: bold; }
.no_difference { color: #777; } .baseline { font-weight: bold; } .incomparable { color: #b8860b; }
img { max-width: 100%; display: block; margin: 1em 0; }
"""


def _html_table(header, rows, verdicts: list[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        css = f' class="{verdicts[i]}"' if verdicts else ""
        body.append(f"<tr{css}>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _config_table_html(report: dict, configs: list[dict]) -> str:
    return _html_table(_header(report)[1], _rows(report, configs), [c["verdict"] for c in configs])


def _data_uri(image: str | bytes | Path) -> str:
    if isinstance(image, str) and image.startswith("data:"):
        return image
    data = image if isinstance(image, bytes) else Path(image).read_bytes()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def render_html(report: dict, images: dict[str, str | bytes]) -> str:
    """A self-contained HTML page; ``images`` maps a figure's name to a PNG path or PNG bytes, embedded as data URIs."""
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        f"<html><head><meta charset='utf-8'><title>sweep {e(str(report['sweep']))}</title>"
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Noise sweep <code>{e(str(report['sweep']))}</code></h1>",
        f"<p><em>{e(_direction(report))}</em></p>",
        f"<p>{e(report['summary'])}</p>",
        f"<p><em>{e(shown_line(report))}</em></p>" if shown_line(report) else "",
        _config_table_html(report, report["configs"]),
    ]
    if report.get("across_tasks"):
        across = report["across_tasks"]
        out += ["<h2>Across tasks</h2>", f"<p>{e(across['summary'])}</p>"]
        out += [
            _html_table(("#", "configuration", "average rank"), _ranking_rows(across)),
            f"<p>{e(_friedman_line(across))}</p>",
        ]
        if report.get("across_data_sets"):
            out += across_section.html(report["across_data_sets"])
        for task in report["tasks"]:
            out += [
                f"<h2>Task <code>{e(task['task'])}</code></h2>",
                f"<p>{e(task['summary'])}</p>",
                _config_table_html(report, task["configs"]),
            ]
    out.append("<h2>What ran</h2><ul>")
    out += [f"<li>{e(line)}</li>" for line in ran_lines(report)]
    out.append("</ul>")
    if images:
        out.append("<h2>Figures</h2>")
        out += [f"<img alt='{e(name)}' src='{_data_uri(image)}'>" for name, image in images.items()]
    out.append("<h2>Methods</h2><ul>")
    out += [f"<li><b>{e(key)}</b>: {e(text)}</li>" for key, text in report["methods"].items()]
    out.append("</ul></body></html>")
    return "\n".join(out)


# --- CSV and JSON ----------------------------------------------------------------------------------

#: What trained a configuration's runs (distinct values, comma-separated), after its statistics.
RAN_COLUMNS = ("engine", "device", "cpu", "gpu", "sweeper_version", "torch_version", "host")
CSV_COLUMNS = (
    "task",
    "position",
    "trial",
    "label",
    "params",
    "n",
    "diverged",
    "failed_to_learn",
    "missing",
    "selection_mean",
    "mean",
    "std",
    "median",
    "iqm",
    "ece",
    "ci_low",
    "ci_high",
    "delta",
    "delta_ci_low",
    "delta_ci_high",
    "p_improve",
    "p_improve_ci_low",
    "p_improve_ci_high",
    "p_value",
    "p_adjusted",
    "verdict",
    "p_best",
    "rank",
    "gap",
    "mde",
    "n_needed",
    *RAN_COLUMNS,
)


def _csv_row(task: str, position: int, c: dict) -> dict:
    def pair(key):
        return c.get(key) or [None, None]

    row = {k: c.get(k) for k in CSV_COLUMNS if k in c}
    row.update(task=task, position=position, params=json.dumps(c["params"], ensure_ascii=False))
    row.update(zip(("ci_low", "ci_high"), pair("ci")))
    row.update(zip(("delta_ci_low", "delta_ci_high"), pair("delta_ci")))
    row.update(zip(("p_improve_ci_low", "p_improve_ci_high"), pair("p_improve_ci")))
    row.update((key, (c.get("ran") or {}).get(key)) for key in RAN_COLUMNS)
    return row


def render_csv(report: dict) -> str:
    """One row per configuration, best first; multi-task sweeps add one block per task (``task`` column)."""
    overall = report["task_names"][0] if len(report["task_names"]) == 1 else "all"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(_csv_row(overall, i, c) for i, c in enumerate(report["configs"], 1))
    for task in report.get("tasks") or []:
        writer.writerows(_csv_row(task["task"], i, c) for i, c in enumerate(task["configs"], 1))
    return buffer.getvalue()


def render_json(report: dict) -> str:
    """The report as strict JSON (missing values are null, never NaN)."""
    return json.dumps(report, allow_nan=False, ensure_ascii=False, indent=2)


# --- files -----------------------------------------------------------------------------------------


def report_figures(report: dict, runs: list[dict], curves: list[dict] | None) -> dict[str, Figure]:
    """The report's figures by name: forest plot, heatmap (if any single-placement configs), learning curves per
    task."""
    figures = {"forest": plots.forest_plot(report, runs)}
    heatmap = plots.delta_heatmap(report)
    if heatmap is not None:
        figures["heatmap"] = heatmap
    if report.get("across_data_sets"):
        figures["across"] = across_section.figure(report["across_data_sets"])
    if curves:
        names = report["task_names"]
        for task in names:
            figures["curves" if len(names) == 1 else f"curves-{task}"] = plots.learning_curves(
                curves, report, task=task
            )
    return figures


def write_report(
    report: dict, runs: list[dict], curves: list[dict] | None, fmt: str, out_path: str | Path
) -> list[Path]:
    """Write the report as ``fmt`` (markdown, html, json, csv) at ``out_path``; returns every file written.

    Markdown links PNGs written beside it (``<stem>-forest.png``, ...); HTML embeds them, so it
    is one self-contained file. All or nothing: every file is written beside its place first, then
    moved there, so a full disk or a folder that cannot be written leaves no half-written report
    (SweeperError, one line).
    """
    fmt = {"md": "markdown"}.get(fmt, fmt)
    if fmt not in FORMATS:
        raise SweeperError(f"report format {fmt!r} is not one of {', '.join(FORMATS)}")
    out = Path(out_path)
    if str(out_path) in ("", ".") or out.is_dir():
        raise SweeperError(
            f"--out {str(out_path)!r}: is a folder; allowed: a file name, e.g. reports/report.{_SUFFIXES[fmt]}"
        )
    if fmt in ("json", "csv"):
        files = {out: (render_json(report) if fmt == "json" else render_csv(report)).encode("utf-8")}
    else:
        figures = report_figures(report, runs, curves)
        if fmt == "html":
            pngs = {name: plots.png_bytes(fig) for name, fig in figures.items()}
            files = {out: render_html(report, pngs).encode("utf-8")}
        else:
            paths = {name: out.with_name(f"{out.stem}-{name}.png") for name in figures}
            text = render_markdown(report, {name: path.name for name, path in paths.items()})
            files = {out: text.encode("utf-8"), **{paths[n]: plots.png_bytes(fig) for n, fig in figures.items()}}
    _write_all(files, out)
    return list(files)


_SUFFIXES = {"markdown": "md", "html": "html", "json": "json", "csv": "csv"}


def _write_all(files: dict[Path, bytes], out: Path) -> None:
    """Every file or none: each written to a temporary file in its folder, then all moved into place."""
    import os
    import tempfile

    temporary: list[str] = []
    mask = os.umask(0)
    os.umask(mask)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        for path, data in files.items():
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            temporary.append(name)
            os.fchmod(fd, 0o666 & ~mask)  # as open() would make it, not mkstemp's 0600
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        for name, path in zip(temporary, files):
            os.replace(name, path)
        temporary.clear()
    except OSError as exc:
        raise SweeperError(
            f"--out {out}: cannot be written: {exc.strerror or type(exc).__name__}; nothing was written"
        ) from None
    finally:
        for name in temporary:
            with contextlib.suppress(OSError):
                os.unlink(name)

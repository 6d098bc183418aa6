"""Render a report dict (from :func:`sweeper.report.build.build_report`) as a terminal table, Markdown, HTML, CSV or
JSON."""

from __future__ import annotations

import base64
import contextlib
import csv
import html
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table
from rich.text import Text

from sweeper.errors import SweeperError
from sweeper.records import describe
from sweeper.report import across as across_section
from sweeper.report import numbers, plots
from sweeper.report.columns import Column, columns, glossary
from sweeper.tasks import features

FORMATS = ("markdown", "html", "json", "csv")
VERDICT_STYLES = {
    "better": "bold green",
    "worse": "bold red",
    "no_difference": "dim",
    "equivalent": "cyan",
    "baseline": "bold",
    "incomparable": "yellow",
}
#: The verdicts ``--verdict`` may keep.
VERDICTS = ("better", "worse", "no_difference", "equivalent", "incomparable")
#: The width of a report that goes to a pipe or a file and no $COLUMNS says otherwise.
PIPED_WIDTH = 80


# --- cells shared by every tabular format ----------------------------------------------------------


def _num(x, signed: bool = False) -> str:
    return numbers.number(x, signed=signed)


def _p(x) -> str:
    return numbers.p_value(x)


def _direction(report: dict) -> str:
    return (
        f"selected on {report['selected_on']}, estimated on {report['metric']}; "
        f"{'higher' if report['higher_is_better'] else 'lower'} is better"
    )


def _table_of(report: dict, configs: list[dict], wide: bool) -> tuple[list[Column], list[list[str]]]:  # noqa: D103
    """The columns of a narrow or wide table and its formatted rows."""
    shown = columns(report, wide=wide)
    return shown, [[column.cell(report, c) for column in shown] for c in configs]


def legend_lines(report: dict, *, wide: bool) -> list[str]:
    """What each column of the table means, one line each, in the table's order."""
    return [f"{c.header(report)}: {c.legend(report)}" for c in columns(report, wide=wide)]


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
        lines += feature_lines(t)
    done = f", finished {setting['finished_at']}" if setting.get("finished_at") else ""
    race = setting.get("racing")
    repeats = (
        f"raced: {race['min']} repeats, then {race['step']} more a round to the open ones, at most {race['max']}"
        + (f", equivalence margin {race['min_effect']:g}" if race.get("min_effect") else "")
        if race
        else f"{setting['repeats']} repeats"
    )
    lines.append(
        f"search space: {setting['space']}; sweep seed {setting['sweep_seed']}, {repeats}; "
        f"started {setting.get('created_at')}{done}"
    )
    if any(h["event"] == "extended" for h in setting.get("history", ())):
        lines.append("history: " + "; ".join(map(_history_entry, setting["history"])))
    return lines


def feature_lines(task: dict) -> list[str]:
    """What a task's model saw, as its sweep stored it: each column and its encoding, what was left out, the
    label mapping (``sweeper.tasks.features``); one line saying so for a sweep stored before it was kept."""
    return features.lines(task.get("features"))


def _history_entry(entry: dict) -> str:
    """One step of a sweep's history in words: planned, or extended (what changed), its size after it."""
    size = f"{entry['repeats']} repeats"
    size = size if entry["planned"] is None else f"{entry['planned']} configurations x {size}"
    if entry["event"] == "planned":
        return f"planned {size} at {entry['at']}"
    return f"extended at {entry['at']} ({entry['changes']}) to {size}"


def race_lines(report: dict) -> list[str]:
    """A raced sweep's configurations, each with the repeats it ran and why it stopped, and the test its
    verdict came from; empty for a sweep whose configurations all ran the same fixed repeats."""
    rows = [c for c in report["configs"] if c.get("stopped") or c.get("test")]
    tests = sorted({c["test"] for c in rows if c.get("test")})
    if not any(c.get("stopped") for c in rows):
        sequential = [t for t in tests if "always-valid" in t]
        if not sequential:
            return []
        return [f"Extended after looking: verdicts from the {sequential[0]} test, valid at any stopping."]
    out = [f"Raced: verdicts from the {' / '.join(tests)} test, valid however the race stopped."]
    out += [f"{c['label']}: {c['repeats']} repeats, stopped: {c.get('stopped') or '—'}" for c in rows]
    return out


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


def render_table(
    report: dict,
    configs: list[dict] | None = None,
    *,
    title: str | None = None,
    width: int | None = None,
    wide: bool = False,
    shown: list[Column] | None = None,
) -> Table:
    """A rich table, best configuration first, verdicts coloured: the narrow columns, or every one
    (``wide``), or those ``shown``. ``configs`` defaults to the report's. Printed on a console, it folds its
    cells to fit; :func:`render_tables` splits a wide one that cannot fit."""
    configs = report["configs"] if configs is None else configs
    shown = shown or columns(report, wide=wide)
    table = Table(title=title or f"{report['sweep']}: {_direction(report)}", caption=shown_line(report))
    for column in shown:
        table.add_column(
            column.header(report),
            justify="left" if column.words else "right",
            overflow="fold",
            min_width=len("no_difference") if column.key == "verdict" else None,
        )
    verdict = next((i for i, column in enumerate(shown) if column.key == "verdict"), None)
    for c in configs:
        cells = [Text(column.cell(report, c)) for column in shown]  # Text: no markup parsing of labels
        if verdict is not None:
            cells[verdict].stylize(VERDICT_STYLES[c["verdict"]])
        table.add_row(*cells)
    return table


def render_tables(
    report: dict, configs: list[dict] | None = None, *, width: int, wide: bool = False, title: str | None = None
) -> list[Table]:
    """The table as it fits ``width``: one narrow table (its cells folded), or every column (``wide``) in as
    many tables side by side would need, each repeating the configuration, so that no row is cut."""
    configs = report["configs"] if configs is None else configs
    shown = columns(report, wide=wide)
    if not wide:
        return [render_table(report, configs, title=title, shown=shown)]
    label = next(c for c in shown if c.key == "configuration")
    rest = [c for c in shown if c is not label]

    def needs(column: Column) -> int:  # its widest cell or header word, with padding and a border
        cells = [column.cell(report, c) for c in configs]
        return max(map(len, [*column.header(report).split(), *cells]), default=1) + 3

    first = min(needs(label), 34) + 1
    groups: list[list[Column]] = [[]]
    used = first
    for column in rest:
        if groups[-1] and used + needs(column) > width:
            groups.append([])
            used = first
        groups[-1].append(column)
        used += needs(column)
    return [
        render_table(report, configs, title=(title if i == 0 else None), shown=[label, *group])
        if i == 0
        else _continued(report, configs, [label, *group])
        for i, group in enumerate(groups)
    ]


def _continued(report: dict, configs: list[dict], shown: list[Column]) -> Table:
    table = render_table(report, configs, shown=shown)
    table.title = "(continued)"
    table.caption = None
    return table


def render_terminal(report: dict, console: Console, *, wide: bool = False) -> None:
    """The report on a terminal: the answer first, the table, what its columns mean, the details, what ran."""
    plain = {"markup": False, "highlight": False}
    console.print(Text(report["answer"], style="bold"), **plain)
    console.print()
    for table in render_tables(report, width=console.width, wide=wide):
        console.print(table)
    for line in legend_lines(report, wide=wide):
        name, _, meaning = line.partition(": ")
        console.print(Text.assemble((name, "bold"), ": ", meaning), **plain)
    raced = race_lines(report)
    if raced:
        console.print()
        console.print(Text(raced[0], style="bold"), **plain)
        for line in raced[1:]:
            console.print(line, **plain)
    console.print()
    console.print(report["summary"], **plain)
    if report.get("across_data_sets"):
        console.print()
        console.print(across_section.terminal(report["across_data_sets"], width=console.width))
    for section in report.get("tasks") or []:
        console.print()
        for table in render_tables(report, section["configs"], title=f"task {section['task']}", width=console.width):
            console.print(table)
        console.print(section["summary"], **plain)
    console.print()
    console.print("What ran: " + "; ".join(ran_lines(report)) + ".", **plain)


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


def lead_figure(report: dict, names) -> str | None:
    """The one figure that answers, shown right after the answer: the forest plot (each setting's difference
    with its interval), or the heatmap where a grid has too many settings for a forest to be read at a glance."""
    names = list(names)
    compared = sum(c["verdict"] != "baseline" for c in report["configs"])
    if "heatmap" in names and compared > HEATMAP_FROM:
        return "heatmap"
    return "forest" if "forest" in names else None


#: Above this many compared configurations the heatmap, not the forest plot, leads.
HEATMAP_FROM = 16


@dataclass(frozen=True)
class Section:
    """One part of the Markdown and HTML pages, in the order of SECTIONS: each renders ``(report, images)``
    to lines (Markdown) or HTML fragments, empty where the report has nothing for it."""

    name: str
    markdown: Callable[[dict, dict], list[str]]
    html: Callable[[dict, dict], list[str]]


def _md_answer(report, images):
    out = [f"# Noise sweep `{report['sweep']}`", "", f"**{report['answer']}**", ""]
    lead = lead_figure(report, images)
    if lead:
        out += [f"![{lead}]({images[lead]})", ""]
    return out


def _md_table_section(report, images):
    out = [f"*{_direction(report)}*", ""]
    if shown_line(report):
        out += [f"*{shown_line(report)}*", ""]
    shown, rows = _table_of(report, report["configs"], wide=False)
    out += [_md_table([c.header(report) for c in shown], rows), ""]
    out += [f"- **{c.header(report)}**: {c.legend(report)}" for c in shown] + [""]
    raced = race_lines(report)
    if raced:
        out += [f"**{raced[0]}**", ""] + [f"- {line}" for line in raced[1:]] + [""]
    return out + ["## In detail", "", report["summary"], ""]


def _md_wide(report, images):
    shown, rows = _table_of(report, report["configs"], wide=True)
    return ["## Every column", "", _md_table([c.header(report) for c in shown], rows), ""]


def _md_tasks(report, images):
    if not report.get("across_tasks"):
        return []
    across = report["across_tasks"]
    out = ["## Across tasks", "", across["summary"], ""]
    out += [_md_table(("#", "configuration", "average rank"), _ranking_rows(across)), "", _friedman_line(across), ""]
    if report.get("across_data_sets"):
        out += across_section.markdown(report["across_data_sets"])
    for task in report["tasks"]:
        shown, rows = _table_of(report, task["configs"], wide=False)
        out += [f"## Task `{task['task']}`", "", task["summary"], ""]
        out += [_md_table([c.header(report) for c in shown], rows), ""]
    return out


def _md_ran(report, images):
    return ["## What ran", ""] + [f"- {line}" for line in ran_lines(report)] + [""]


def _md_figures(report, images):
    lead = lead_figure(report, images)
    rest = {name: path for name, path in images.items() if name != lead}
    if not rest:
        return []
    return ["## Figures", ""] + [line for name, path in rest.items() for line in (f"![{name}]({path})", "")]


def _md_glossary(report, images):
    return ["## Glossary", ""] + [f"- **{term}**: {text}" for term, text in glossary(report).items()] + [""]


def _md_methods(report, images):
    return ["## Methods", ""] + [f"- **{key}**: {text}" for key, text in report["methods"].items()] + [""]


def render_markdown(report: dict, images: dict[str, str]) -> str:
    """A Markdown document; ``images`` maps a figure's name to the path or URL the document links to."""
    return "\n".join(line for section in SECTIONS for line in section.markdown(report, images))


# --- HTML ------------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 80em; }
table { border-collapse: collapse; font-size: 0.9em; margin: 1em 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.6em; text-align: right; }
.words { text-align: left; }
.better { color: #1a9850; font-weight: bold; } .worse { color: #d73027; font-weight: bold; }
.no_difference { color: #777; } .baseline { font-weight: bold; } .incomparable { color: #b8860b; }
img { max-width: 100%; display: block; margin: 1em 0; }
.answer { font-size: 1.2em; font-weight: bold; }
th[title] { text-decoration: underline dotted; cursor: help; }
.glossary dt { font-weight: bold; } .glossary dd { margin: 0 0 0.5em 1.5em; }
"""


def _html_table(
    header, rows, verdicts: list[str] | None = None, titles: list[str] | None = None, words: list[bool] | None = None
) -> str:
    """A table; ``titles`` become each header's hover text, ``words`` marks the left-aligned text columns."""
    titles = titles or [None] * len(header)
    left = [" class='words'" if w else "" for w in (words or [i == 1 for i in range(len(header))])]
    head = "".join(
        f"<th{css} title='{html.escape(t, quote=True)}'>{html.escape(h)}</th>"
        if t
        else f"<th{css}>{html.escape(h)}</th>"
        for h, t, css in zip(header, titles, left)
    )
    body = []
    for i, row in enumerate(rows):
        css = f' class="{verdicts[i]}"' if verdicts else ""
        body.append(f"<tr{css}>" + "".join(f"<td{w}>{html.escape(cell)}</td>" for cell, w in zip(row, left)) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _config_table_html(report: dict, configs: list[dict], *, wide: bool = False) -> str:
    shown, rows = _table_of(report, configs, wide)
    return _html_table(
        [c.header(report) for c in shown],
        rows,
        [c["verdict"] for c in configs],
        [c.legend(report) for c in shown],
        [c.words for c in shown],
    )


def _data_uri(image: str | bytes | Path) -> str:
    if isinstance(image, str) and image.startswith("data:"):
        return image
    data = image if isinstance(image, bytes) else Path(image).read_bytes()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


_e = html.escape


def _html_answer(report, images):
    out = [
        f"<h1>Noise sweep <code>{_e(str(report['sweep']))}</code></h1>",
        f"<p class='answer'>{_e(report['answer'])}</p>",
    ]
    lead = lead_figure(report, images)
    if lead:
        out.append(f"<img alt='{_e(lead)}' src='{_data_uri(images[lead])}'>")
    return out


def _html_table_section(report, images):
    return [
        f"<p><em>{_e(_direction(report))}</em> (hover a column's name for what it means)</p>",
        f"<p><em>{_e(shown_line(report))}</em></p>" if shown_line(report) else "",
        _config_table_html(report, report["configs"]),
        *_html_race(report),
        "<h2>In detail</h2>",
        f"<p>{_e(report['summary'])}</p>",
    ]


def _html_race(report) -> list[str]:
    raced = race_lines(report)
    if not raced:
        return []
    return [f"<p><b>{_e(raced[0])}</b></p><ul>", *(f"<li>{_e(line)}</li>" for line in raced[1:]), "</ul>"]


def _html_wide(report, images):
    return [
        "<details><summary>Every column</summary>",
        _config_table_html(report, report["configs"], wide=True),
        "</details>",
    ]


def _html_tasks(report, images):
    if not report.get("across_tasks"):
        return []
    across = report["across_tasks"]
    out = ["<h2>Across tasks</h2>", f"<p>{_e(across['summary'])}</p>"]
    out += [
        _html_table(("#", "configuration", "average rank"), _ranking_rows(across)),
        f"<p>{_e(_friedman_line(across))}</p>",
    ]
    if report.get("across_data_sets"):
        out += across_section.html(report["across_data_sets"])
    for task in report["tasks"]:
        out += [
            f"<h2>Task <code>{_e(task['task'])}</code></h2>",
            f"<p>{_e(task['summary'])}</p>",
            _config_table_html(report, task["configs"]),
        ]
    return out


def _html_ran(report, images):
    return ["<h2>What ran</h2><ul>", *(f"<li>{_e(line)}</li>" for line in ran_lines(report)), "</ul>"]


def _html_figures(report, images):
    lead = lead_figure(report, images)
    rest = {name: image for name, image in images.items() if name != lead}
    if not rest:
        return []
    return ["<h2>Figures</h2>", *(f"<img alt='{_e(name)}' src='{_data_uri(image)}'>" for name, image in rest.items())]


def _html_glossary(report, images):
    entries = glossary(report).items()
    return [
        "<h2>Glossary</h2><dl class='glossary'>",
        *(f"<dt>{_e(t)}</dt><dd>{_e(x)}</dd>" for t, x in entries),
        "</dl>",
    ]


def _html_methods(report, images):
    items = (f"<li><b>{_e(key)}</b>: {_e(text)}</li>" for key, text in report["methods"].items())
    return ["<h2>Methods</h2><ul>", *items, "</ul>"]


#: The pages' sections in order; a new section is one entry here (and its two functions).
SECTIONS: list[Section] = [
    Section("answer", _md_answer, _html_answer),
    Section("table", _md_table_section, _html_table_section),
    Section("every column", _md_wide, _html_wide),
    Section("tasks", _md_tasks, _html_tasks),
    Section("what ran", _md_ran, _html_ran),
    Section("figures", _md_figures, _html_figures),
    Section("glossary", _md_glossary, _html_glossary),
    Section("methods", _md_methods, _html_methods),
]


def render_html(report: dict, images: dict[str, str | bytes]) -> str:
    """A self-contained HTML page; ``images`` maps a figure's name to a PNG path or PNG bytes, embedded as data URIs."""
    head = (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>sweep {_e(str(report['sweep']))}</title>"
        f"<style>{_CSS}</style></head><body>"
    )
    body = [fragment for section in SECTIONS for fragment in section.html(report, images) if fragment]
    return "\n".join([head, *body, "</body></html>"])


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
    "wins",
    "n_pairs",
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


#: What other engineers' racing adds to a row, where it does: why it stopped, which test gave the verdict.
OPTIONAL_COLUMNS = ("stopped", "test")


def csv_columns(report: dict) -> list[str]:
    """CSV_COLUMNS, then each regression metric of ``report["also"]`` (mean, interval, paired difference and its
    interval), then the optional columns some row has."""
    also = [
        f"{name}{part}"
        for name in report.get("also") or ()
        for part in ("", "_ci_low", "_ci_high", "_delta", "_delta_ci_low", "_delta_ci_high")
    ]
    rows = report["configs"] + [c for t in report.get("tasks") or [] for c in t["configs"]]
    optional = [key for key in OPTIONAL_COLUMNS if any(key in c for c in rows)]
    return [*CSV_COLUMNS[: -len(RAN_COLUMNS)], *also, *optional, *RAN_COLUMNS]


def _csv_row(task: str, position: int, c: dict, fields: list[str]) -> dict:
    def pair(key):
        return c.get(key) or [None, None]

    row = {k: c.get(k) for k in fields if k in c}
    row.update(task=task, position=position, params=json.dumps(c["params"], ensure_ascii=False))
    for key in ("ci", "delta_ci", "p_improve_ci", *(k for k in c if k.endswith("_ci") and k + "_low" in fields)):
        row.update(zip((f"{key}_low", f"{key}_high"), pair(key)))
    row.update((key, (c.get("ran") or {}).get(key)) for key in RAN_COLUMNS)
    return row


def render_csv(report: dict) -> str:
    """One row per configuration, best first; multi-task sweeps add one block per task (``task`` column)."""
    overall = report["task_names"][0] if len(report["task_names"]) == 1 else "all"
    fields = csv_columns(report)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(_csv_row(overall, i, c, fields) for i, c in enumerate(report["configs"], 1))
    for task in report.get("tasks") or []:
        writer.writerows(_csv_row(task["task"], i, c, fields) for i, c in enumerate(task["configs"], 1))
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

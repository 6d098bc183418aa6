"""`sweeper report` on a stored sweep says what trained its runs."""

from __future__ import annotations

import json

from sweeper.engine.machine import describe, this_machine


def test_the_report_says_what_trained_the_runs_and_what_drove_the_sweep(sweeper_cli, tiny_sqlite):
    url = f"sqlite:///{tiny_sqlite}"
    (engine,) = {r["engine"] for r in json.loads(sweeper_cli("runs", "tiny", "--db", url, "--format", "json").stdout)}
    here = this_machine("cpu").as_dict()

    table = sweeper_cli("report", "tiny", "--db", url)
    as_json = json.loads(sweeper_cli("report", "tiny", "--db", url, "--format", "json").stdout)

    assert table.exit_code == 0, table.stderr
    assert (f"; 6 runs: {describe({**here, 'engine': engine})}; driven by `sweeper run`: {describe(here)}."
            in " ".join(table.stdout.split()))
    assert as_json["ran"] == {"runs": [{"engine": engine, **{k: here[k] for k in ("device", "cpu", "gpu",
                                        "sweeper_version", "torch_version", "host")}, "n_runs": 6}],
                              "sweep": here}

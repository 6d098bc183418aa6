"""``sweeper bench``: workload W1 (``sweeper.engine.bench``), or the driver (``--driver``: ``sweeper.driver.bench``)."""

from __future__ import annotations

import json
import sys
from enum import Enum

import typer

from sweeper import listing
from sweeper.cli.app import out, say
from sweeper.cli.options import BenchFormat, Device


class OwnEngine(str, Enum):
    auto = "auto"
    stacked = "stacked"


def bench(
    device: Device = typer.Option(Device.cpu, help="Where to train."),
    members: int | None = typer.Option(None, min=1, help="Population size (default: the pack size rule)."),
    epochs: int | None = typer.Option(None, min=1, help="Epochs per run (W1: 4000; --driver: 20)."),
    reference_runs: int = typer.Option(2, min=1, help="Runs of the reference loop to time."),
    noise: str | None = typer.Option(
        None,
        help="W1 with other noise: PLACEMENT:KIND:STD, e.g. "
        "weights:gaussian:0.1 (default: pre_activation:gaussian:0.1).",
    ),
    stacked: bool = typer.Option(
        True, help="Also time the stacked torch program (the engine for what the fused one does not take, and on GPUs)."
    ),
    own_model: bool = typer.Option(
        True,
        help="Also time W1's network written as a user's nn.Sequential "
        "factory: its population against its reference loop.",
    ),
    own_engine: OwnEngine = typer.Option(
        OwnEngine.auto,
        help="The user's model's population engine: auto (a plain stack of dense layers on the fused engine) "
        "or stacked (torch.func, what every other model trains with).",
    ),
    own_space: str | None = typer.Option(
        None,
        help="Time the own model of this search-space file's task instead of W1 (its first noisy grid "
        "configuration; --epochs: the task's unless given): population against its reference loop.",
    ),
    rounds: int = typer.Option(
        1,
        min=1,
        max=50,
        help="--own-space: alternate the reference loop and the population this many times; medians.",
    ),
    format: BenchFormat = typer.Option(BenchFormat.table, "--format", "-f", help="table to read, or json for scripts."),
    driver: bool = typer.Option(
        False,
        "--driver",
        help="Time the driver instead: tiny grids swept into --db, training vs driver vs store per configuration.",
    ),
    grids: list[str] | None = typer.Option(
        None, "--grid", help="--driver: CONFIGSxREPEATS, repeatable (default: 391x10 and 3901x2)."
    ),
    racing: bool = typer.Option(
        False,
        "--racing",
        help="Race instead: three grids (search_spaces/racing/) swept fixed and raced, runs spent, choices and "
        "verdicts kept side by side.",
    ),
    quick: bool = typer.Option(False, "--quick", help="--racing: 5 epochs and 10 repeats, to check it runs."),
    db: str | None = typer.Option(
        None,
        "--db",
        help="--driver: the database to sweep into (default: a "
        "temporary SQLite file); sweeps bench-driver-* are "
        "replaced there.",
    ),
) -> None:
    """Workload W1: runs/s of the reference loop and of the population trainer, side by side (and W1's network
    as a user's nn.Sequential: --own-model); with --own-space, a search-space file's own model; with
    --driver, where a sweep's time goes (training, the driver, the store) when training is cheap; with --racing,
    raced sweeps against fixed ones on three grids (runs spent, choices, verdicts kept)."""
    if racing:
        from sweeper.driver.race_bench import bench_racing

        result = bench_racing(quick, db, log=say)
        rows, title = [{k: v for k, v in row.items() if k != "said"} for row in result], "racing benchmark"
        for row in result:
            if "said" in row:
                say(f"{row['grid']}: {row['said']}")
    elif driver:
        from sweeper.driver.bench import DEFAULT_GRIDS, bench_grids

        result = bench_grids(grids or DEFAULT_GRIDS, db, epochs or 20, log=say)
        rows, title = result, "driver benchmark (ms per configuration)"
    elif own_space is not None:
        from sweeper.driver.executors import resolve_device
        from sweeper.engine.bench import bench_own_space

        result = bench_own_space(
            own_space,
            resolve_device(device.value),
            members=members,
            epochs=epochs,
            reference_runs=reference_runs,
            own_engine=own_engine.value,
            rounds=rounds,
            log=say,
        )
        rows, title = [{"figure": k, "value": v} for k, v in result.items()], "own model benchmark"
    else:
        from sweeper.driver.executors import resolve_device
        from sweeper.engine.bench import bench_w1, parse_noise

        result = bench_w1(
            resolve_device(device.value),
            members=members,
            epochs=epochs or 4000,
            reference_runs=reference_runs,
            stacked=stacked,
            noise=None if noise is None else parse_noise(noise),
            own_model=own_model,
            own_engine=own_engine.value,
            log=say,
        )
        rows, title = [{"figure": k, "value": v} for k, v in result.items()], "W1 benchmark"
    if format == BenchFormat.json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        out.print(listing.to_table(rows, title))

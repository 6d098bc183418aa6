"""The command line: each command parses its arguments, calls the library and renders the answer.

``app`` (the ``sweeper`` entry point) is made in ``app.py`` with how errors and output reach the user;
the commands live beside it by what they do: ``sweeps.py`` (run, validate, rerun), ``stored.py`` (the
listings, query, report, delete), ``database.py`` (``sweeper db``), ``bench.py``; ``progress.py`` is the
progress ``run`` shows (a bar, or lines in a log), ``options.py`` the choices several commands share. They
are registered here, in the order ``sweeper -h`` lists them.
"""

from sweeper.cli import bench, database, stored, sweeps
from sweeper.cli.app import Command, app, one_line_errors
from sweeper.cli.options import BenchFormat, Device, Executor, ReportFormat

for _command in (sweeps.run, sweeps.validate, stored.sweeps, stored.trials, stored.runs):
    app.command(cls=Command)(one_line_errors(_command))
# SQL may open with a comment ("-- the best runs"), which is not an option of the command.
app.command(cls=Command, context_settings={"ignore_unknown_options": True})(one_line_errors(stored.query))
app.add_typer(database.db_app, name="db")
for _command in (sweeps.rerun, stored.delete, stored.report, bench.bench):
    app.command(cls=Command)(one_line_errors(_command))

__all__ = ["BenchFormat", "Device", "Executor", "ReportFormat", "app"]

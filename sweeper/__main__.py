"""``python -m sweeper``: the ``sweeper`` command."""

from sweeper.cli import app

app(prog_name="sweeper")

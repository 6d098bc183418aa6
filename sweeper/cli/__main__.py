"""``python -m sweeper.cli``: the ``sweeper`` command."""

from sweeper.cli import app

app()

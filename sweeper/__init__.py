"""sweeper: which noise regularization reliably helps your small-data model."""

from importlib import metadata

from sweeper.errors import SweeperError

__all__ = ["SweeperError"]
try:
    __version__ = metadata.version("sweeper")
except metadata.PackageNotFoundError:  # a source tree on the path, not installed
    __version__ = "unknown"

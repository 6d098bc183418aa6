"""sweeper: which noise regularization reliably helps your small-data model."""

from sweeper.errors import SweeperError

__all__ = ["SweeperError"]
__version__ = "0.1.0"

"""The one error hierarchy: the CLI turns every SweeperError into one line on stderr and exit 2."""


class SweeperError(Exception):
    """Something the user can fix: bad input, a missing sweep, an unreachable database."""


class SpaceError(SweeperError):
    """A search-space file is invalid; the message names the file, the key path and what is allowed."""


class TaskError(SweeperError):
    """A task (data set, model, optimizer) cannot be built as asked."""


class StoreError(SweeperError):
    """The trial database refused or lacks what was asked for."""


class ExecutorError(SweeperError):
    """An executor could not run packs (no GPU, no Ray cluster, ...)."""


class LeaseError(StoreError):
    """A sweep is being run by another ``sweeper run``, or this one lost its hold on the sweep."""

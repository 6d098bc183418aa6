"""How a search space differs from the one a sweep was started with, in words for one line.

The store refuses to resume a sweep whose search space changed (``Store.start_sweep``); this says where:
the settings that differ (``grid.std [0.1] -> [0.1, 0.2]``), else the command-line overrides, else the
first line that differs.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator

import yaml


def differences(
    old_yaml: str, new_yaml: str, old_overrides: str | None, new_overrides: str | None, settings: dict
) -> str:
    """The changes between a stored search space and a new one, listed (four at most, the rest counted).

    ``old_overrides``/``new_overrides`` are the command line's overrides as stored (JSON), ``settings``
    the sweep's settings that differ, ``{key: (old, new)}``.
    """
    # Trailing newlines mean nothing in YAML, and a sweep migrated from 0.1.0 lost its own (its
    # overrides comment had taken their place).
    same_yaml = old_yaml.rstrip("\n") == new_yaml.rstrip("\n")
    changes = (
        (_yaml_changes(old_yaml, new_yaml) if not same_yaml else [])
        or [f"{key} {old!r} -> {new!r}" for key, (old, new) in settings.items()]
        or _override_changes(old_overrides, new_overrides)
        or _line_changes(old_yaml, new_yaml)
    )
    return _listed(changes)


#: The changes of a search space an error names; more are counted. And the longest value it shows.
_MAX_CHANGES, _MAX_VALUE = 4, 40
_NOT_SET = object()


def _yaml_changes(old: str, new: str) -> list[str]:
    """The settings that differ between two search-space YAML texts, as ``key old -> new``."""
    try:
        return list(_tree_changes("", yaml.safe_load(old), yaml.safe_load(new)))
    except yaml.YAMLError:
        return []


def _tree_changes(path: str, old, new) -> Iterator[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            yield from _tree_changes(
                f"{path}.{key}" if path else str(key), old.get(key, _NOT_SET), new.get(key, _NOT_SET)
            )
    elif (
        isinstance(old, list)
        and isinstance(new, list)
        and old != new
        and max(len(_shown(old)), len(_shown(new))) > _MAX_VALUE
    ):
        # Long lists (of configurations, say) item by item; short ones (of stds) whole.
        for i in range(max(len(old), len(new))):
            yield from _tree_changes(
                f"{path}[{i}]", old[i] if i < len(old) else _NOT_SET, new[i] if i < len(new) else _NOT_SET
            )
    elif old != new:
        yield f"{path or 'the whole file'} {_short(old)} -> {_short(new)}"


def _override_changes(old: str | None, new: str | None) -> list[str]:
    """The command-line overrides (stored as JSON) that differ, as ``--flag old -> new``."""
    old, new = json.loads(old or "{}"), json.loads(new or "{}")
    return [
        f"--{key} {_short(old.get(key, _NOT_SET))} -> {_short(new.get(key, _NOT_SET))}"
        for key in sorted({*old, *new})
        if old.get(key, _NOT_SET) != new.get(key, _NOT_SET)
    ]


def _line_changes(old: str, new: str) -> list[str]:
    """The first line that differs, for texts whose settings agree (a comment or the layout changed)."""
    pairs = itertools.zip_longest(old.splitlines(), new.splitlines(), fillvalue=_NOT_SET)
    for number, (a, b) in enumerate(pairs, 1):
        if a != b:
            return [f"line {number} {_short(a)} -> {_short(b)}"]
    return []


def _shown(value) -> str:
    return "(not set)" if value is _NOT_SET else repr(value)


def _short(value) -> str:
    text = _shown(value)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 3] + "..."


def _listed(changes: list[str]) -> str:
    more = len(changes) - _MAX_CHANGES
    shown = ", ".join(changes[:_MAX_CHANGES])
    return f"{shown} and {more} more" if more > 0 else shown

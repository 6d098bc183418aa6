"""Reading a search space's YAML: values checked one by one, every failure one line naming the key path.

``_Values`` holds what every part of the file needs: mappings with known keys, choices, numbers,
lists, placements, and pydantic's errors said in the same words (``an integer from 1 to 10,000``).
"""

from __future__ import annotations

import difflib
import math
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, NoReturn

import yaml
from pydantic import BaseModel, ValidationError

from sweeper.errors import SpaceError
from sweeper.noise.spec import BASELINE, PLACEMENTS, probability_kinds


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's parser, when built with it: 6x faster
    """YAML 1.1 SafeLoader that reads ``1e-3`` as a number and refuses a key given twice."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str):
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 wants a dot in a float ("1.0e-3"); people write 1e-3. (A subclass gets its own resolver table.)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _at(path: str, key: str | int) -> str:
    """The key path one step down: ``search.grid`` + ``std`` or + 2 -> ``search.grid.std[2]``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _did_you_mean(value: Any, allowed) -> str:
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, [str(a) for a in allowed], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _s(n: int) -> str:
    """The plural ending for a count."""
    return "s" if n != 1 else ""


def _length(value: Any) -> int:
    """How many values a grid axis gives: a list's length, one for a scalar or nothing."""
    return len(value) if isinstance(value, list) else 1


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


#: Pydantic error types that mean "not a number in the field's range".
_NUMBER_ERRORS = {
    "greater_than",
    "greater_than_equal",
    "less_than",
    "less_than_equal",
    "finite_number",
    "int_type",
    "int_parsing",
    "int_from_float",
    "float_type",
    "float_parsing",
    "bool_type",
}


def _constraints(model: type[BaseModel], name: str) -> tuple[type | None, list]:
    """A numeric field's type (int or float) and its constraints (``Ge(ge=1)``, ``AllowInfNan(False)``...),
    also those of its items (``hidden: tuple[Annotated[int, Field(ge=1)], ...]``) and of a union's numeric member."""
    field = model.model_fields.get(name)
    if field is None:
        return None, []
    kind, metadata, todo = None, list(field.metadata), [field.annotation]
    while todo:
        t = todo.pop(0)
        if t in (int, float):
            kind = kind or t
        elif typing.get_origin(t) is Annotated:
            base, *extra = typing.get_args(t)
            todo.append(base)
            metadata += [m for e in extra for m in getattr(e, "metadata", [e])]
        elif typing.get_origin(t) in (tuple, typing.Union, types.UnionType):
            todo += typing.get_args(t)
    return kind, metadata


def _bounds(model: type[BaseModel], name: str) -> tuple[float, float]:
    """The inclusive range of an integer field."""
    _, metadata = _constraints(model, name)
    low = max([m.ge for m in metadata if hasattr(m, "ge")], default=-math.inf)
    high = min([m.le for m in metadata if hasattr(m, "le")], default=math.inf)
    return low, high


def _allowed(model: type[BaseModel], name: str) -> str | None:
    """What a numeric field allows, in words: ``an integer from 1 to 10,000,000``, ``a finite number > 0``."""
    kind, metadata = _constraints(model, name)
    if kind is None:
        return None
    lows = [(m.ge, "[", ">=") for m in metadata if hasattr(m, "ge")]
    lows += [(m.gt, "(", ">") for m in metadata if hasattr(m, "gt")]
    highs = [(m.le, "]", "<=") for m in metadata if hasattr(m, "le")]
    highs += [(m.lt, ")", "<") for m in metadata if hasattr(m, "lt")]
    if kind is int:
        if lows and highs:
            return f"an integer from {lows[0][0]:,} to {highs[0][0]:,}"
        return "an integer" + "".join(f" {op} {v:,}" for v, _, op in lows + highs)
    if lows and highs:
        (low, left, _), (high, right, _) = lows[0], highs[0]
        return f"a finite number in {left}{low:g}, {high:g}{right}"
    return "a finite number" + "".join(f" {op} {v:g}" for v, _, op in lows + highs)


def _yaml_loc(loc: tuple, model: type[BaseModel]) -> tuple[tuple, type[BaseModel]]:
    """Pydantic's error location as YAML keys (union member tags dropped), and the model of its last key."""
    out, current, owner = [], model, model
    for item in loc:
        if isinstance(item, int):
            out.append(item)
        elif current is not None:  # else: a union member tag such as 'int' or "literal['full']"
            out.append(item)
            owner = current
            field = current.model_fields.get(item)
            annotation = field.annotation if field else None
            is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
            current = annotation if is_model else None
    return tuple(out), owner


def _show(value: Any) -> str:
    """A value as a user wrote it, short."""
    if isinstance(value, (list, dict)):
        text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    elif value is None:
        text = "nothing (null)"
    else:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class _Values:
    """Reads the values of one file; every failure names the file and the key path."""

    def __init__(self, source: str, base_dir: Path | None = None):
        self.source = source
        self.base_dir = base_dir if base_dir is not None else Path(".").resolve()

    def fail(self, path: str, message: str) -> NoReturn:
        where = f"{self.source}: {path}: " if path else f"{self.source}: "
        raise SpaceError(" ".join((where + message).split()))

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
        if not isinstance(value, dict):
            self.fail(path, f"expected a mapping with keys {', '.join(allowed)}; got {_show(value)}")
        for key in value:
            if key not in allowed:
                self.fail(
                    _at(path, str(key)),
                    f"unknown key; allowed: {', '.join(allowed)}{_did_you_mean(key, allowed)}",
                )
        for key in required:
            if key not in value or value[key] is None:
                self.fail(_at(path, key), "required key missing")
        return value

    def choice(self, value: Any, path: str, allowed, why: str = "") -> Any:
        if not isinstance(value, str) or value not in allowed:
            self.fail(
                path,
                f"{_show(value)} is not allowed{why}; allowed: {', '.join(map(str, allowed))}"
                f"{_did_you_mean(value, allowed)}",
            )
        return value

    def number(self, value: Any, path: str, what: str, low: float = 0.0) -> float:
        if not _is_number(value) or not math.isfinite(value) or value < low:
            self.fail(path, f"{_show(value)} is not allowed; allowed: a finite number >= {low:g} ({what})")
        return float(value)

    def std(self, value: Any, path: str) -> float:
        return self.number(value, path, f"the noise size; a probability for kinds {' and '.join(probability_kinds())}")

    def std_min(self, value: Any, path: str) -> float:
        return self.number(value, path, "the size a linear or cosine decay ends at")

    def flag(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            self.fail(path, f"{_show(value)} is not allowed; allowed: true or false")
        return value

    def gamma(self, value: Any, path: str) -> float:
        return self.number(value, path, "the annealing exponent")

    def items(self, value: Any, path: str) -> list[tuple[Any, str]]:
        """A list's items with their paths; a scalar is a list of one."""
        if not isinstance(value, list):
            return [(value, path)]
        if not value:
            self.fail(path, "an empty list; give at least one value")
        return [(v, _at(path, i)) for i, v in enumerate(value)]

    def placement(self, value: Any, path: str, allow_baseline: bool) -> tuple[str, ...]:
        """One placement or a list of them (a combined placement); ``none`` -> ``()``."""
        if allow_baseline and value == BASELINE:
            return ()
        if isinstance(value, list):
            names = tuple(self.choice(v, p, PLACEMENTS) for v, p in self.items(value, path))
            if len(set(names)) != len(names):
                self.fail(path, f"a placement appears twice in {_show(value)}; give each site once")
            return names
        allowed = ((BASELINE,) if allow_baseline else ()) + PLACEMENTS
        why = " (the baseline is always run; leave it out)" if value == BASELINE else ""
        return (self.choice(value, path, allowed, why),)

    def pydantic(self, err: ValidationError, path: str, model: type[BaseModel], extra_keys=()) -> NoReturn:
        """Turn pydantic's first error into one line with the YAML key path."""
        errors = err.errors()
        first = errors[0]
        loc, model_at = _yaml_loc(first["loc"], model)
        at = path
        for item in loc:
            at = _at(at, item)
        value = first.get("input")
        kind = first["type"]
        name = next((k for k in reversed(loc) if isinstance(k, str)), "")
        if kind == "extra_forbidden":
            allowed = (tuple(extra_keys) if model_at is model else ()) + tuple(model_at.model_fields)
            self.fail(at, f"unknown key; allowed: {', '.join(allowed)}{_did_you_mean(loc[-1], allowed)}")
        if kind == "missing":
            self.fail(at, "required key missing")
        if kind == "value_error":
            self.fail(at, first["msg"].removeprefix("Value error, "))
        # A union (batch_size: int | 'full') reports one error per member at the same key path.
        same = [e for e in errors if _yaml_loc(e["loc"], model)[0] == loc]
        if len(same) > 1 or kind == "literal_error":
            allowed, values = [], []
            for e in same:
                if e["type"] == "literal_error":
                    values += re.findall(r"'([^']*)'", e["ctx"]["expected"])
                    allowed.append(", ".join(re.findall(r"'([^']*)'", e["ctx"]["expected"])))
                else:
                    allowed.append(_allowed(model_at, name) or e["type"].split("_")[0])
            hint = _did_you_mean(value, values)
            self.fail(at, f"{_show(value)} is not allowed; allowed: {' or '.join(allowed)}{hint}")
        if kind in _NUMBER_ERRORS and _allowed(model_at, name):
            self.fail(at, f"{_show(value)} is not allowed; allowed: {_allowed(model_at, name)}")
        message = first["msg"].replace("a valid tuple", "a list")
        self.fail(at, f"{message[0].lower()}{message[1:]} (got {_show(value)})")

    def yaml(self, text: str) -> Any:
        """The YAML as Python values; a syntax error is one line with its line and column."""
        try:
            return yaml.load(text, Loader=_Loader)
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            self.fail("", f"{where}invalid YAML: {e.problem or e.context}")
        except yaml.YAMLError as e:
            self.fail("", f"invalid YAML: {e}")

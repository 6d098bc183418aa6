"""Numbers as the report prints them: no float artefacts, — for what is undefined, accuracy in points.

A mean of differences that cancel exactly can come out as ``-4.44e-17``; printed beside ``+0.00848`` it
reads as a difference. Here the numbers printed together (a value and its interval) share one precision,
set by the largest of them, and whatever rounds to zero at that precision prints as ``0``.
"""

from __future__ import annotations

import math

from sweeper import metrics

#: What an undefined figure prints as (a missing value, NaN, an MDE where the differences have no spread).
UNDEFINED = "—"
#: Significant digits of the largest number of a group.
DIGITS = 3
#: Outside this range of magnitudes a group prints in scientific notation.
FIXED_RANGE = (1e-4, 1e5)

#: Metrics whose differences read better in points (hundredths): accuracy 0.043 is "+4.3 points".
POINTS = ("accuracy",)


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def group(values, *, digits: int = DIGITS, signed: bool = False, floor: float = 0.0, decimals: int = 0) -> list[str]:
    """``values`` printed with one shared precision; None or not finite prints as —.

    The largest magnitude gets ``digits`` significant digits and the others as many decimals (at least
    ``decimals``); a value that rounds to zero there, or is at most ``floor`` (below what the stored numbers
    resolve), prints as ``0``. ``signed`` puts + before positive values. E.g.
    ``group([-4.44e-17, 0.00848], digits=2, signed=True) == ["0", "+0.0085"]``.
    """
    finite = [abs(float(v)) for v in values if _finite(v) and abs(float(v)) > floor]
    scale = max(finite, default=0.0)
    out = []
    for v in values:
        if not _finite(v):
            out.append(UNDEFINED)
            continue
        v = float(v)
        if scale == 0.0 or abs(v) <= floor:
            out.append("0")
            continue
        exponent = math.floor(math.log10(scale))
        if FIXED_RANGE[0] <= scale < FIXED_RANGE[1]:
            text = f"{v:.{max(decimals, digits - 1 - exponent)}f}"
            if float(text) == 0.0:
                out.append("0")
                continue
            out.append(("+" + text) if signed and v > 0 else text)
        else:
            # scientific: round at the group's precision, so a value far below the largest is 0
            step = 10.0 ** (exponent - digits + 1)
            if round(v / step) == 0:
                out.append("0")
                continue
            text = f"{v:.{digits - 1}e}"
            out.append(("+" + text) if signed and v > 0 else text)
    return out


def number(x, **options) -> str:
    """One number (see :func:`group` for the options)."""
    return group([x], **options)[0]


def interval(value, ci, **options) -> str:
    """``value [low, high]`` at one precision (:func:`group`'s options); the value alone where the interval is
    missing; — if there is no value."""
    if not _finite(value):
        return UNDEFINED
    if ci is None or not all(_finite(x) for x in ci):
        return number(value, **options)
    v, low, high = group([value, *ci], **options)
    return f"{v} [{low}, {high}]"


def p_value(x) -> str:
    """A p-value: three decimals, or scientific below 0.001; — if undefined."""
    if not _finite(x):
        return UNDEFINED
    return f"{x:.1e}" if x < 1e-3 else f"{x:.3f}"


def probability(x) -> str:
    return f"{x:.2f}" if _finite(x) else UNDEFINED


def unit_scale(metric: str) -> tuple[float, str]:
    """How a difference of ``metric`` (bare or a column) is printed: (factor, unit word); points for accuracy."""
    return (100.0, "points") if metrics.base(metric) in POINTS else (1.0, "")

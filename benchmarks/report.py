"""The report's lines: a rate with its GFLOP/s and share of the ceiling, and whether a target is met."""
from __future__ import annotations

import math


def row(label, rate, unit_flops, ceiling, width=34):
    return (f"  {label:<{width}}{rate:12,.0f}{rate * unit_flops / 1e9:10.1f}"
            f"{100 * rate * unit_flops / 1e9 / ceiling:10.0f}%")


def met(value, target, more_is_better=True) -> str:
    if value is None or not math.isfinite(value):
        return "not measured"
    return "met" if (value >= target if more_is_better else value <= target) else "NOT met"

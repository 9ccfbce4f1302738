"""Number formatting shared by the Markdown tables, the plot and the sweep's log."""

import math


def _fmt(v, spec: str = ".3g", signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return format(v, ("+" if signed else "") + spec)


def _fmt_seconds(s: float) -> str:
    return f"{s:g}"
